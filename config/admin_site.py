"""The staff admin asks for a second factor too: staff manage products, customers
and tokens, so a password alone must not be enough (docs/security.md)."""

from __future__ import annotations

from django_otp.admin import OTPAdminSite


class StaffAdminSite(OTPAdminSite):
    """Django's admin behind django-otp: a password and a code from the staff
    member's authenticator (enrolled with ``manage.py staff_totp``)."""

    def __init__(self, name: str = "admin") -> None:
        # django-otp names its site "otpadmin"; as the default site it is "admin".
        super().__init__(name)

    site_header = "Software Escrow — staff"
    site_title = "Software Escrow staff"
    # Staff have no customer-portal page to go back to.
    site_url = None
    # The side menu took a quarter of a 1280 px screen from every list (the invoices'
    # columns were cut off); the breadcrumbs and the index lead everywhere it did.
    enable_nav_sidebar = False
