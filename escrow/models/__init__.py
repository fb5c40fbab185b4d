from __future__ import annotations

from escrow.models.audit import AuditChainHead, AuditEntry
from escrow.models.backups import Backup, BackupDrill
from escrow.models.claims import (
    ClaimEvidence,
    ClaimRelease,
    ClaimState,
    ReleaseClaim,
    ReleaseCondition,
)
from escrow.models.customers import DataExport, ReleaseKey
from escrow.models.deposits import Deposit, DepositAcknowledgement, DepositCopy, DepositState
from escrow.models.files import StoredFile
from escrow.models.notaries import NotaryRecipient, NotaryStoredIdentity
from escrow.models.notifications import Notification
from escrow.models.organisations import Organisation, Role, User
from escrow.models.products import Product
from escrow.models.tokens import DepositToken

__all__ = [
    "AuditChainHead",
    "AuditEntry",
    "Backup",
    "BackupDrill",
    "ClaimEvidence",
    "ClaimRelease",
    "ClaimState",
    "DataExport",
    "Deposit",
    "DepositAcknowledgement",
    "DepositCopy",
    "DepositState",
    "DepositToken",
    "NotaryRecipient",
    "NotaryStoredIdentity",
    "Notification",
    "Organisation",
    "Product",
    "ReleaseClaim",
    "ReleaseCondition",
    "ReleaseKey",
    "Role",
    "StoredFile",
    "User",
]
