from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class StaffAdminConfig(AdminConfig):
    """Django's admin app, with the two-factor staff site as the default site."""

    default_site = "config.admin_site.StaffAdminSite"
