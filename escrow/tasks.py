"""Celery tasks of the escrow app: thin wrappers that call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.mail import mail_admins

from escrow.services.audit import audit_chain_verify as verify_chain
from escrow.services.audit import audit_record

logger = logging.getLogger(__name__)


@shared_task(name="escrow.tasks.audit_chain_verify")
def audit_chain_verify() -> dict[str, object]:
    """Verify the audit chain, record the result in it, and alert staff when it is broken."""
    report = verify_chain()
    if report.intact:
        audit_record(action="audit.chain_verified", details={"entries": report.checked})
    else:
        logger.error("Audit chain broken: %s", report.problem)
        mail_admins("Audit chain broken", f"audit_chain_verify: {report.problem}")
    return {"intact": report.intact, "checked": report.checked, "problem": report.problem}
