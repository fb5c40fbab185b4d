from __future__ import annotations

from records.models.audit import AuditChainHead, AuditEntry
from records.models.files import StoredFile
from records.models.notifications import Notification
from records.models.schedule import ScheduledRun

__all__ = ["AuditChainHead", "AuditEntry", "Notification", "ScheduledRun", "StoredFile"]
