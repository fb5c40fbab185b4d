"""The escrow agreement as a versioned document: its current version, what an
organisation accepted (version, person, time, address), and its PDF."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Organisation, User
from billing.models import AgreementAcceptance, EscrowAgreement, Subscription
from records.pdf import pdf_render
from records.services.audit import audit_record

TEXTS = Path(__file__).resolve().parent / "agreement_texts"


@dataclass(frozen=True)
class Block:
    """A piece of the agreement's text: a heading or a paragraph."""

    kind: str  # "heading" or "paragraph"
    text: str


def agreement_text_of(version: int) -> tuple[str, str]:
    """The title and text of a version, as shipped in billing/agreement_texts/vN.txt
    (first line the title, then the text)."""
    title, _, text = (TEXTS / f"v{version}.txt").read_text(encoding="utf-8").partition("\n")
    return title.strip(), text.strip()


def agreement_current() -> EscrowAgreement:
    """The version customers accept now. Migration billing 0005 publishes version 1;
    should the table be empty (a database flushed by a test), version 1 is published
    again from the same shipped text rather than leaving nothing to accept."""
    current = EscrowAgreement.objects.filter(is_current=True).first()
    if current is not None:
        return current
    title, text = agreement_text_of(1)
    with transaction.atomic():
        agreement, _ = EscrowAgreement.objects.get_or_create(
            version=1,
            defaults={
                "title": title,
                "text": text,
                "published_at": timezone.now(),
                "is_current": True,
            },
        )
    return agreement


def agreement_blocks(agreement: EscrowAgreement) -> list[Block]:
    """The text in headings ("## " lines) and paragraphs (separated by blank lines)."""
    blocks = []
    for chunk in agreement.text.split("\n\n"):
        chunk = " ".join(chunk.split())
        if chunk.startswith("## "):
            blocks.append(Block("heading", chunk[3:]))
        elif chunk:
            blocks.append(Block("paragraph", chunk))
    return blocks


def client_ip(value: str) -> str | None:
    """An IP address as recorded with an acceptance, or None when there is none (a
    demo or a script) or it is not an address."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def agreement_accept(
    *,
    agreement: EscrowAgreement,
    subscription: Subscription,
    actor: User,
    ip_address: str = "",
) -> AgreementAcceptance:
    """Record that ``actor`` accepted ``agreement`` for their organisation when
    subscribing; in the caller's transaction, so it stands or falls with the
    subscription. Only the current version can be accepted."""
    if not agreement.is_current:
        raise ValidationError(
            f"Version {agreement.version} of the escrow agreement is no longer current: "
            "read the current version and accept it.",
            code="agreement_not_current",
        )
    # Staff may subscribe a customer on its written instruction: the acceptance then
    # names the staff member who recorded it, for the licence holder.
    if not actor.is_staff and actor.organisation_id != subscription.licence.customer_id:
        raise ValidationError(
            "Only a user of the licence holder can accept the agreement.", code="not_holder"
        )
    with transaction.atomic():
        acceptance = AgreementAcceptance.objects.create(
            agreement=agreement,
            organisation=subscription.licence.customer,
            subscription=subscription,
            accepted_by=actor,
            accepted_at=timezone.now(),
            ip_address=client_ip(ip_address),
        )
        audit_record(
            action="agreement.accept",
            actor=actor,
            target=acceptance,
            details={
                "version": agreement.version,
                "subscription": subscription.pk,
                "ip_address": acceptance.ip_address or "",
            },
        )
    return acceptance


def acceptances_of(organisation: Organisation) -> QuerySet[AgreementAcceptance]:
    """The organisation's acceptances, newest first, with what a list shows."""
    return AgreementAcceptance.objects.filter(organisation=organisation).select_related(
        "agreement", "accepted_by", "subscription__licence__product"
    )


def agreement_pdf_render(
    *, agreement: EscrowAgreement, organisation: Organisation | None = None
) -> bytes:
    """The agreement as a PDF; for an organisation, with a record of its acceptances
    of this version."""
    acceptances = (
        list(acceptances_of(organisation).filter(agreement=agreement))
        if organisation is not None
        else []
    )
    return pdf_render(
        template="certificates/agreement.html",
        context={
            "agreement": agreement,
            "blocks": agreement_blocks(agreement),
            "organisation": organisation,
            "acceptances": acceptances,
            "generated_at": timezone.now(),
        },
    )
