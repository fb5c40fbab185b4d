"""The customer's account page, the colleagues of their organisation, and the page
an invited colleague opens from the e-mail. The rules are in
escrow/services/people.py; these views only show and submit them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from accounts.access import customer_required, public
from accounts.models import Invitation, Role, User
from escrow.services.people import (
    account_update,
    colleague_remove,
    invitation_accept,
    invitation_days,
    invitation_for_token,
    invitation_problem,
    invitation_revoke,
    invitation_send,
)
from portal.people_forms import AccountForm, InvitationAcceptForm, InviteForm


def _refuse_non_admins(user: Any) -> None:
    if not user.is_organisation_admin:
        raise PermissionDenied(
            "Only an admin of your organisation can invite or remove colleagues."
        )


@sensitive_post_parameters("current_password")
@customer_required
def account(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    initial = {"full_name": user.full_name, "email": user.email}
    form = AccountForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            account_update(
                user=user,
                full_name=form.cleaned_data["full_name"],
                email=form.cleaned_data["email"],
                current_password=form.cleaned_data["current_password"],
            )
        except ValidationError as error:
            user.refresh_from_db()
            form.add_error(None, error)
        else:
            messages.success(request, "Your account is saved.")
            return redirect("portal:account")
    return render(request, "portal/account.html", {"form": form, "account": user})


@customer_required
def colleagues(request: HttpRequest) -> HttpResponse:
    """Everyone of the organisation, and for an admin the invitations and controls."""
    user: Any = request.user
    form = InviteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        _refuse_non_admins(user)
        if form.is_valid():
            try:
                invitation = invitation_send(
                    actor=user,
                    email=form.cleaned_data["email"],
                    as_admin=form.cleaned_data["as_admin"],
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request,
                    f"Invitation sent to {invitation.email}. The link in it works once, "
                    f"for {invitation_days()} days.",
                )
                return redirect("portal:colleagues")
    people = User.objects.filter(organisation=user.organisation, role=Role.CUSTOMER).order_by(
        "-is_active", "full_name", "email"
    )
    invitations = (
        Invitation.objects.filter(
            organisation=user.organisation, accepted_at__isnull=True, revoked_at__isnull=True
        ).select_related("invited_by")
        if user.is_organisation_admin
        else Invitation.objects.none()
    )
    context = {
        "people": people,
        "invitations": invitations,
        "is_admin": user.is_organisation_admin,
        "form": form,
        "days": invitation_days(),
    }
    return render(request, "portal/colleagues.html", context)


@require_POST
@customer_required
def colleague_remove_view(request: HttpRequest, user_id: int) -> HttpResponse:
    user: Any = request.user
    _refuse_non_admins(user)
    colleague = get_object_or_404(
        User, pk=user_id, organisation=user.organisation, role=Role.CUSTOMER
    )
    try:
        colleague_remove(actor=user, colleague=colleague)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
    else:
        messages.success(request, f"{colleague.full_name} is removed and can no longer sign in.")
    return redirect("portal:colleagues")


@require_POST
@customer_required
def invitation_revoke_view(request: HttpRequest, invitation_id: int) -> HttpResponse:
    user: Any = request.user
    _refuse_non_admins(user)
    invitation = get_object_or_404(Invitation, pk=invitation_id, organisation=user.organisation)
    try:
        invitation_revoke(actor=user, invitation=invitation)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
    else:
        messages.success(request, f"The invitation of {invitation.email} is revoked.")
    return redirect("portal:colleagues")


@public
@sensitive_post_parameters("password1", "password2")
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the invitation e-mail: the link itself is the credential. The
    invitee chooses a name and password and then signs in."""
    found = invitation_for_token(token)
    problem = invitation_problem(found)
    form = InvitationAcceptForm(request.POST if request.method == "POST" else None)
    if not problem and request.method == "POST" and form.is_valid():
        try:
            user = invitation_accept(
                token=token,
                full_name=form.cleaned_data["full_name"],
                password=form.cleaned_data["password1"],
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                form.add_error(None, error)
            else:
                problem = " ".join(error.messages)
        else:
            messages.success(
                request,
                f"Welcome, {user.full_name}: your account is ready. Sign in with "
                f"{user.email} and the password you chose.",
            )
            return redirect("portal:login")
    context = {"invitation": found, "problem": problem, "form": form}
    return render(request, "portal/invitation.html", context)
