from __future__ import annotations

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
from escrow.models.notaries import (
    NotaryRecipient,
    NotaryStoredIdentity,
    SealChangeState,
    SealRecipientChange,
)
from escrow.models.tokens import DepositToken

__all__ = [
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
    "ReleaseClaim",
    "ReleaseCondition",
    "ReleaseKey",
    "SealChangeState",
    "SealRecipientChange",
]
