"""Customer passwords: reset by e-mail and change, through Django's own views.

A reset link is Django's token: it works once (it depends on the password and the
last sign-in, so using it spends it) and expires after PASSWORD_RESET_TIMEOUT. The
page after a request is the same whether or not the address has an account. Links
are built from ESCROW_PUBLIC_URL (records.links.configured_public_origin), never
from the request's Host header: unlike the other e-mail links, this one is mailed
at a stranger's request, so a Host header of their choosing must not shape it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpResponse
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator

from accounts.access import customer_required, public
from accounts.models import Role, User
from records.links import configured_public_origin
from records.services.audit import audit_record

FORM_TEMPLATE = "portal/password_form.html"
DONE_TEMPLATE = "portal/password_done.html"


class _PortalPage(auth_views.PasswordContextMixin):
    """The page's words (title, introduction, button) for the two shared templates."""

    texts: ClassVar[dict[str, Any]] = {}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(**kwargs) | self.texts


class CustomerPasswordResetForm(PasswordResetForm):
    def get_users(self, email: str) -> Iterator[Any]:
        # Customer users only. Notaries and staff are excepted: a reset asked for their
        # address sends nothing (and shows the same page as any other address), since a
        # mailbox alone must never open the notary portal or the admin. Notaries recover
        # through another path: another notary recovers them in the notary portal
        # (escrow/services/notary_recovery.py); staff are reset by other staff.
        return (user for user in super().get_users(email) if user.role == Role.CUSTOMER)


@method_decorator(public, name="dispatch")
class CustomerPasswordResetView(_PortalPage, auth_views.PasswordResetView):
    form_class = CustomerPasswordResetForm
    template_name = FORM_TEMPLATE
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password-reset-done")
    texts: ClassVar[dict[str, Any]] = {
        "title": "Forgot your password?",
        "intro": "Give the e-mail address you sign in with; we send it a link to choose a "
        "new password.",
        "submit_label": "Send the link",
    }

    @property
    def extra_email_context(self) -> dict[str, Any]:
        return {
            "public_url": configured_public_origin(),
            "valid_minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
        }


@method_decorator(public, name="dispatch")
class CustomerPasswordResetDoneView(_PortalPage, auth_views.PasswordResetDoneView):
    template_name = DONE_TEMPLATE
    texts: ClassVar[dict[str, Any]] = {"title": "Check your e-mail"}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # The same words for every address, known or not.
        minutes = settings.PASSWORD_RESET_TIMEOUT // 60
        return super().get_context_data(**kwargs) | {
            "message": "If that address belongs to a customer account, a link to choose a "
            f"new password is on its way. It works once, within {minutes} minutes."
        }


@method_decorator(public, name="dispatch")
class CustomerPasswordResetConfirmView(_PortalPage, auth_views.PasswordResetConfirmView):
    template_name = FORM_TEMPLATE
    success_url = reverse_lazy("portal:password-reset-complete")
    texts: ClassVar[dict[str, Any]] = {
        "title": "Choose a new password",
        "submit_label": "Set the password",
    }

    def get_user(self, uidb64: str) -> Any:
        # A link names a customer user or nobody: a token for anyone else is refused
        # like a wrong one.
        user = super().get_user(uidb64)
        return user if user is not None and user.role == Role.CUSTOMER else None

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(action="user.password_reset", actor=form.user, target=form.user)
        return response


@method_decorator(public, name="dispatch")
class CustomerPasswordResetCompleteView(_PortalPage, auth_views.PasswordResetCompleteView):
    template_name = DONE_TEMPLATE
    texts: ClassVar[dict[str, Any]] = {
        "title": "Password set",
        "message": "Your new password is set; the link you used no longer works.",
        "sign_in": True,
    }


@method_decorator(customer_required, name="dispatch")
class CustomerPasswordChangeView(_PortalPage, auth_views.PasswordChangeView):
    template_name = FORM_TEMPLATE
    success_url = reverse_lazy("portal:password-change-done")
    texts: ClassVar[dict[str, Any]] = {
        "title": "Change password",
        "intro": "Give your current password, then the new one twice.",
        "submit_label": "Change the password",
    }

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        user: User = form.user
        audit_record(action="user.password_change", actor=user, target=user)
        return response


@method_decorator(customer_required, name="dispatch")
class CustomerPasswordChangeDoneView(_PortalPage, auth_views.PasswordChangeDoneView):
    template_name = DONE_TEMPLATE
    texts: ClassVar[dict[str, Any]] = {
        "title": "Password changed",
        "message": "Your new password is set.",
    }
