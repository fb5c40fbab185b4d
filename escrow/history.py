"""The history of a claim or a deposit in sentences people read.

Audit entries name actions with codes (``releaseclaim.notify_vendor``,
``evidence.view``); the portals, the vendor's page and the data export show each
entry as one sentence instead: "The vendor was notified by e-mail on 2 Dec 2026
at 14:05 UTC." Every action the code records on a claim or a deposit has its own
sentence (``SENTENCES``); an action without one still reads as words, never as
its code.

Who acted is named for the reader (``Audience``): the notary sees every person's
name; the customer sees its own colleagues by name and "the notary" or "our
staff" for the others; the vendor sees roles only."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db.models import Q

from accounts.models import User
from escrow.business_days import zone_of
from escrow.models import Deposit, DepositState, ReleaseClaim
from escrow.models.claims import ClaimState
from records.models import AuditEntry


class Audience(StrEnum):
    """Who reads the history: decides how people are named."""

    NOTARY = "notary"  # the notary portal and staff: every name
    CUSTOMER = "customer"  # the claimant's portal and its data export
    VENDOR = "vendor"  # the vendor's page behind its signed link: roles only


@dataclass(frozen=True)
class HistoryLine:
    """One entry of a history: ``text`` is the whole sentence with its time;
    ``note`` what the person wrote with it (reasons, a statement), if anything."""

    at: datetime
    text: str
    note: str = ""


def when_text(moment: datetime, *, time_zone: str = "UTC") -> str:
    """ "2 Dec 2026 at 14:05 UTC", on the reader's clock when it has one."""
    local = moment.astimezone(zone_of(time_zone))
    return f"{local.day} {local:%b %Y} at {local:%H:%M} {local.tzname()}"


@dataclass(frozen=True)
class _Entry:
    """An audit entry with its actor named for the reader."""

    entry: AuditEntry
    who: str  # "Anna Berg", "the notary", "the vendor", ... ("" when nobody in person)

    @property
    def details(self) -> dict[str, Any]:
        return self.entry.details if isinstance(self.entry.details, dict) else {}

    def by(self, fallback: str) -> str:
        return self.who or fallback


def _files(entry: _Entry) -> list[str]:
    return [str(item.get("file", "")) for item in entry.details.get("evidence", []) or []]


def _with_documents(entry: _Entry) -> str:
    names = _files(entry)
    if not names:
        return ""
    quoted = ", ".join(f'"{name}"' for name in names)
    return f" with {len(names)} document{'' if len(names) == 1 else 's'} ({quoted})"


def _claim_state(value: str) -> str:
    try:
        return str(ClaimState(value).label).lower()
    except ValueError:
        return value.replace("_", " ")


def _deposit_state(value: str) -> str:
    try:
        return str(DepositState(value).label).lower()
    except ValueError:
        return value.replace("_", " ")


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _voluntary(entry: _Entry) -> str:
    if entry.entry.actor_id is not None:
        who = entry.by("Our staff")
        return f"{who} recorded a voluntary release on the vendor's written instruction"
    return "The vendor released the software voluntarily, without waiting for the contest period"


def _contest(entry: _Entry) -> str:
    if entry.entry.actor_id is not None:
        return f"{entry.by('Our staff')} recorded the vendor's contest{_with_documents(entry)}"
    return f"The vendor contested the claim{_with_documents(entry)}"


def _start_review(entry: _Entry) -> str:
    if entry.who:
        return f"{entry.who} started the review of the claim"
    return "The claim went to the notary for review"


def _release(entry: _Entry) -> str:
    if entry.who:
        return f"{entry.who} released the deposit to the claimant"
    return "The released source was made available to the claimant"


def _receive(entry: _Entry) -> str:
    version = entry.details.get("version")
    what = f"version {version}" if version else "the archive"
    return f"The vendor's release pipeline uploaded {what}"


def _seal(entry: _Entry) -> str:
    count = len(entry.details.get("recipients", []) or [])
    if count:
        return (
            f"The archive was sealed (encrypted) for {count} "
            f"key{'' if count == 1 else 's'} held by the notaries"
        )
    return "The archive was sealed (encrypted) for the notaries"


def _fail(entry: _Entry) -> str:
    step = _deposit_state(entry.entry.from_state)
    return f"Processing stopped with a failure while the deposit was {step}"


def _retry(entry: _Entry) -> str:
    if entry.entry.actor_label.startswith("token:"):
        return "The release pipeline uploaded the archive again and processing started over"
    if entry.who:
        return f"{entry.who} retried the step that failed"
    return "The step that failed was tried again"


def _gave_up(entry: _Entry) -> str:
    sites = entry.details.get("missing_sites", []) or []
    where = f" to {', '.join(str(site) for site in sites)}" if sites else ""
    return (
        f"Copying{where} stopped retrying for now; the deposit stays safe in the primary "
        "site and is copied once the sites are back"
    )


def _admin(entry: _Entry) -> str:
    kind = "claim" if entry.entry.object_type == ReleaseClaim._meta.label else "deposit"
    fields = [str(field).replace("_", " ") for field in entry.details.get("fields", []) or []]
    if entry.entry.action.endswith(".add"):
        return f"{entry.by('Our staff')} created the {kind} record by hand"
    changed = f" ({', '.join(fields)})" if fields else ""
    return f"{entry.by('Our staff')} corrected the {kind} record by hand{changed}"


Sentence = Callable[[_Entry], str]

#: Every action the code records on a claim or a deposit, as the start of a sentence
#: (" on <time>." follows). tests/escrow/test_history_sentences.py checks that every
#: action name in the source has one.
SENTENCES: dict[str, Sentence] = {
    # Release claims (escrow.services.claims, escrow.views.downloads)
    "releaseclaim.file": lambda e: f"{e.by('The claimant')} filed the claim{_with_documents(e)}",
    "releaseclaim.notify_vendor": lambda e: "The vendor was notified by e-mail",
    "releaseclaim.contest": _contest,
    "releaseclaim.mark_uncontested": lambda e: (
        "The contest period ended without a contest from the vendor"
    ),
    "releaseclaim.release_voluntarily": _voluntary,
    "releaseclaim.start_review": _start_review,
    "releaseclaim.request_evidence": lambda e: f"{e.by('The notary')} asked for more evidence",
    "releaseclaim.provide_evidence": lambda e: (
        f"{e.by('The claimant')} added evidence{_with_documents(e)}"
    ),
    "releaseclaim.approve": lambda e: f"{e.by('The notary')} approved the claim",
    "releaseclaim.reject": lambda e: f"{e.by('The notary')} rejected the claim",
    "releaseclaim.release": _release,
    "releaseclaim.withdraw": lambda e: f"{e.by('The claimant')} withdrew the claim",
    "evidence.view": lambda e: (
        f'{e.by("Someone")} opened evidence "{e.details.get("file", "a document")}"'
    ),
    "release.download": lambda e: f"{e.by('The claimant')} downloaded the released source",
    "admin.releaseclaim.change": _admin,
    "admin.releaseclaim.add": _admin,
    # Deposits (escrow.services.deposits, escrow.services.replication, downloads)
    "deposit.receive": _receive,
    "deposit.verify": lambda e: (
        "The archive passed every check, and its manifest was written and signed"
    ),
    "deposit.seal": _seal,
    "deposit.store": lambda e: (
        "The sealed file was stored in the primary storage site and read back intact"
    ),
    "deposit.replicate": lambda e: "Every other storage site confirmed a verified copy",
    "deposit.acknowledge": lambda e: (
        f"{e.by('The notary')} acknowledged holding the sealed deposit in the safe"
    ),
    "deposit.reject": lambda e: "The upload was refused: the archive failed a check",
    "deposit.fail": _fail,
    "deposit.retry": _retry,
    "deposit.replication_gave_up": _gave_up,
    "deposit.certificate_download": lambda e: (
        f"{e.by('Someone')} downloaded the deposit certificate"
    ),
    "admin.deposit.change": _admin,
    "admin.deposit.add": _admin,
}

#: What else an organisation's activity holds (its data export lists it): its
#: subscriptions, invoices, people and exports. Not needed for a claim or a deposit.
ACTIVITY: dict[str, Sentence] = {
    "subscription.request": lambda e: f"{e.by('Someone')} asked to subscribe to escrow",
    "subscription.await_payment": lambda e: (
        f"{e.by('Someone')} accepted the escrow terms; the subscription awaits payment"
    ),
    "subscription.activate": lambda e: "The escrow subscription became active",
    "subscription.renew": lambda e: "The escrow subscription was renewed for another year",
    "subscription.reactivate": lambda e: "The escrow subscription became active again",
    "subscription.lapse": lambda e: "The escrow subscription lapsed: its invoice was not paid",
    "subscription.cancel": lambda e: f"{e.by('Someone')} cancelled the escrow subscription",
    "subscription.cancel_at_period_end": lambda e: (
        f"{e.by('Someone')} cancelled the escrow subscription at the end of its period"
    ),
    "subscription.end": lambda e: "The escrow subscription ended",
    "invoice.issue": lambda e: "An invoice was issued",
    "credit_note.issue": lambda e: "A credit note was issued",
    "payment.record": lambda e: "A payment was recorded",
    "refund.record": lambda e: "A refund was recorded",
    "licence.create": lambda e: "A licence was recorded",
    "agreement.accept": lambda e: f"{e.by('Someone')} accepted the escrow agreement",
    "release_key.set": lambda e: f"{e.by('Someone')} set the organisation's release key",
    "export.request": lambda e: f"{e.by('Someone')} asked for a data export",
    "dataexport.finish": lambda e: "A data export was ready to download",
    "dataexport.fail": lambda e: "A data export could not be built",
    "file.download": lambda e: f"{e.by('Someone')} downloaded a document",
    "user.password_change": lambda e: f"{e.by('Someone')} changed their password",
    "user.password_reset": lambda e: f"{e.by('Someone')} set a new password by e-mail link",
    "account.update": lambda e: f"{e.by('Someone')} updated their account details",
    "invitation.send": lambda e: f"{e.by('Someone')} invited a colleague",
    "invitation.accept": lambda e: f"{e.by('Someone')} accepted an invitation and joined",
    "invitation.revoke": lambda e: f"{e.by('Someone')} withdrew an invitation",
    "colleague.remove": lambda e: f"{e.by('Someone')} removed a colleague",
}

# Actions whose reason is what a person wrote, shown with the sentence.
_NOTES = {
    "releaseclaim.contest",
    "releaseclaim.release_voluntarily",
    "releaseclaim.request_evidence",
    "releaseclaim.approve",
    "releaseclaim.reject",
    "releaseclaim.withdraw",
    "deposit.reject",
    "deposit.fail",
    "deposit.retry",
    "deposit.replication_gave_up",
}


def _fallback(entry: _Entry) -> str:
    """A sentence for an action without one: its words, never its code."""
    words = entry.entry.action.rsplit(".", 1)[-1].replace("_", " ").strip() or "a step"
    sentence = f"{entry.by('The escrow service')} recorded a step (“{words}”)"
    if entry.entry.to_state:
        is_claim = entry.entry.object_type == ReleaseClaim._meta.label
        state = (_claim_state if is_claim else _deposit_state)(entry.entry.to_state)
        sentence += f"; it is now {state}"
    return sentence


_ROLE_WORDS = {
    Audience.CUSTOMER: {"notary": "the notary", "staff": "our staff"},
    Audience.VENDOR: {
        "customer": "the claimant",
        "notary": "the notary",
        "staff": "the escrow service's staff",
    },
}


def _namer(
    entries: list[AuditEntry], audience: Audience, organisation_id: int | None
) -> Callable[[AuditEntry], str]:
    """A function naming each entry's actor for the reader, with one query for all."""
    emails, ids = set(), set()
    for entry in entries:
        role, _, email = entry.actor_label.partition(":")
        if email and role in {"customer", "notary", "staff"}:
            emails.add(email)
        if entry.actor_id is not None:
            ids.add(entry.actor_id)
    found = list(
        User.objects.filter(Q(email__in=emails) | Q(pk__in=ids)).select_related("organisation")
    )
    by_email = {user.email: user for user in found}
    by_id = {user.pk: user for user in found}

    def who(entry: AuditEntry) -> str:
        label = entry.actor_label
        if label == "vendor":
            return "the vendor"
        role, _, email = label.partition(":")
        if role not in {"customer", "notary", "staff"} or not email:
            return ""  # the system, a pipeline token: the sentence says who
        # The actor's row when there is one (its e-mail may have changed since), else
        # the e-mail the entry names (a signed link's viewer has no row).
        person = by_id.get(entry.actor_id or 0) or by_email.get(email)
        name = (person.full_name if person else "") or email
        if audience == Audience.NOTARY:
            if role == "notary":
                return f"the notary {name}"
            if role == "staff":
                return f"{name} (staff)"
            organisation = person.organisation if person and person.organisation_id else None
            return f"{name} of {organisation.name}" if organisation else name
        words = _ROLE_WORDS[audience]
        if audience == Audience.CUSTOMER and role == "customer":
            own = person is not None and person.organisation_id == organisation_id
            return name if own else "another customer"
        return words.get(role, "")

    return who


def history_lines(
    entries: Iterable[AuditEntry],
    *,
    audience: Audience,
    time_zone: str = "UTC",
    organisation_id: int | None = None,
) -> list[HistoryLine]:
    """Each entry as a sentence for ``audience``, times on ``time_zone``'s clock.
    ``organisation_id``: the customer reading it, whose own users are named."""
    entries = list(entries)
    who = _namer(entries, audience, organisation_id)
    lines = []
    for audit in entries:
        entry = _Entry(audit, _capitalised(who(audit)))
        sentence = SENTENCES.get(audit.action) or ACTIVITY.get(audit.action) or _fallback
        when = when_text(audit.created_at, time_zone=time_zone)
        note = audit.reason.strip() if audit.action in _NOTES else ""
        text = f"{_capitalised(sentence(entry))} on {when}."
        lines.append(HistoryLine(at=audit.created_at, text=text, note=note))
    return lines


def deposit_history(deposit: Deposit) -> list[AuditEntry]:
    """Every audit entry about ``deposit``, oldest first."""
    return list(
        AuditEntry.objects.filter(
            object_type=Deposit._meta.label, object_id=str(deposit.pk)
        ).order_by("sequence")
    )
