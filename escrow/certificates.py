"""Deposit certificates (PDF) and the expiring links they are downloaded through."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from accounts.models import Role
from escrow.models import Deposit, DepositState
from escrow.selectors import products_covered_for
from records.models import StoredFile
from records.pdf import pdf_render
from records.services.files import stored_file_open, stored_file_put
from vault.keys import system_signing_key
from vault.manifest import public_key_text

CERTIFIABLE_STATES = [DepositState.STORED, DepositState.REPLICATED, DepositState.ACKNOWLEDGED]


def may_see_certificate(user: Any, deposit: Deposit) -> bool:
    """Staff, a notary who has passed the second factor, and customers whose active
    escrow subscription covers the deposit's product."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.role == Role.STAFF:
        return True
    if user.role == Role.NOTARY:
        return bool(user.is_verified())
    if user.role == Role.CUSTOMER:
        return products_covered_for(user.organisation).filter(pk=deposit.product_id).exists()
    return False


def certificate_pdf_render(*, deposit: Deposit) -> bytes:
    """The deposit certificate as a PDF."""
    context = {
        "deposit": deposit,
        "manifest": deposit.manifest,
        "completeness": deposit.manifest.get("completeness", {}),
        "copies": deposit.copies.order_by("site", "kind"),
        "acknowledgement": getattr(deposit, "acknowledgement", None),
        "system_key": public_key_text(system_signing_key()),
        "generated_at": timezone.now(),
    }
    return pdf_render(template="certificates/deposit.html", context=context)


def certificate_document_render(*, deposit: Deposit) -> bytes:
    """The certificate for the deposit's current state, rendered once per state and kept
    in the storage sites with every other document (a later state gets a new one)."""
    key = f"certificates/{deposit.product.slug}/{deposit.pk}/{deposit.state}.pdf"
    stored = StoredFile.objects.filter(key=key).first()
    if stored is None:
        stored = stored_file_put(
            key=key,
            source=certificate_pdf_render(deposit=deposit),
            purpose=StoredFile.Purpose.CERTIFICATE,
            content_type="application/pdf",
            filename=f"deposit-{deposit.product.slug}-{deposit.version}.pdf",
        )
    with stored_file_open(stored) as stream:
        return stream.read(stored.size + 1)
