"""The notary's consent to every change of who deposits are sealed for."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.access import notary_required
from escrow.models import NotaryRecipient, SealChangeState, SealRecipientChange
from escrow.services.seal_changes import (
    seal_change_approve,
    seal_change_reject,
    seal_changes_waiting,
)
from records.services.transitions import TransitionRefused


class SealDecisionForm(forms.Form):
    ACTIONS = (("approve", "Approve: the change takes effect now"), ("reject", "Reject"))

    action = forms.ChoiceField(choices=ACTIONS, widget=forms.RadioSelect)
    token = forms.CharField(
        label="A new code from your authenticator app (required to approve)",
        required=False,
        max_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
    reason = forms.CharField(widget=forms.Textarea, max_length=5000, required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "approve" and not (data.get("token") or "").strip().isdigit():
            self.add_error("token", "Approving needs a six-digit code from your authenticator.")
        if data.get("action") == "reject" and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why you reject it.")
        return data


def _context(form: SealDecisionForm | None = None, focus: int | None = None) -> dict[str, Any]:
    return {
        "waiting": seal_changes_waiting(),
        "recipients": NotaryRecipient.objects.filter(is_active=True).select_related("notary"),
        "decided": SealRecipientChange.objects.exclude(state=SealChangeState.PROPOSED)[:20],
        "form": form or SealDecisionForm(),
        "focus": focus,
    }


@notary_required
def seal_changes(request: HttpRequest) -> HttpResponse:
    return render(request, "notary/seal_changes.html", _context())


@notary_required
@require_POST
def seal_change_decide(request: HttpRequest, change_id: int) -> HttpResponse:
    notary: Any = request.user
    change = get_object_or_404(SealRecipientChange, pk=change_id)
    form = SealDecisionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["action"] == "approve":
                seal_change_approve(
                    change=change, notary=notary, token=data["token"], reason=data["reason"]
                )
            else:
                seal_change_reject(change=change, notary=notary, reason=data["reason"])
        except (TransitionRefused, PermissionDenied, ValidationError) as error:
            form.add_error(None, " ".join(getattr(error, "messages", [str(error)])))
        else:
            messages.success(request, "Your decision is recorded and announced.")
            return redirect("notary:seal-changes")
    return render(request, "notary/seal_changes.html", _context(form, focus=change.pk), status=400)
