"""Deposit certificates (PDF) and the expiring links they are downloaded through."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from escrow.links import link_claims, link_token
from escrow.models import Deposit, DepositState, Role, User
from escrow.selectors import products_covered_for
from escrow.vault.keys import system_signing_key
from escrow.vault.manifest import public_key_text

LINK_SALT = "escrow.certificate-link"
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


def certificate_link(*, deposit: Deposit, user: User) -> str:
    """A download path that works for ESCROW_LINK_SECONDS (at most an hour)."""
    token = link_token(salt=LINK_SALT, deposit=deposit.pk, user=user.pk)
    return reverse("certificate-download", kwargs={"token": token})


def certificate_from_link(token: str) -> tuple[Deposit, User] | None:
    """The deposit and user a link was made for, or ``None`` when it is forged or expired."""
    found = link_claims(token, salt=LINK_SALT)
    if found is None:
        return None
    claims, _ = found
    deposit = Deposit.objects.filter(pk=claims.get("deposit", 0)).select_related("product").first()
    user = User.objects.filter(pk=claims.get("user", 0), is_active=True).first()
    if deposit is None or user is None:
        return None
    return deposit, user


def render_certificate_pdf(*, deposit: Deposit) -> bytes:
    """The deposit certificate as a PDF (WeasyPrint)."""
    from weasyprint import HTML  # imported late: loading Pango costs a second at start-up

    context = {
        "deposit": deposit,
        "manifest": deposit.manifest,
        "completeness": deposit.manifest.get("completeness", {}),
        "copies": deposit.copies.order_by("site", "kind"),
        "acknowledgement": getattr(deposit, "acknowledgement", None),
        "system_key": public_key_text(system_signing_key()),
        "generated_at": timezone.now(),
    }
    html = render_to_string("certificates/deposit.html", context)
    return bytes(HTML(string=html).write_pdf())


def certificate_document(*, deposit: Deposit) -> bytes:
    """The certificate for the deposit's current state, rendered once per state and kept
    in the storage sites with every other document (a later state gets a new one)."""
    from escrow.models import StoredFile
    from escrow.services.files import open_stored, stored_file_put

    key = f"certificates/{deposit.product.slug}/{deposit.pk}/{deposit.state}.pdf"
    stored = StoredFile.objects.filter(key=key).first()
    if stored is None:
        stored = stored_file_put(
            key=key,
            source=render_certificate_pdf(deposit=deposit),
            purpose=StoredFile.Purpose.CERTIFICATE,
            content_type="application/pdf",
            filename=f"deposit-{deposit.product.slug}-{deposit.version}.pdf",
        )
    with open_stored(stored) as stream:
        return stream.read(stored.size + 1)
