"""The S3 client side of a storage site: options, error classification, clients.

One process-wide boto3 session, clients created from it under a lock; every
botocore error classified once here as transient (a retry may cure it) or not.
vault/sites_s3.py builds the storage site on top of this."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
#: S3 refuses multipart parts smaller than this (except the last one).
MIN_PART_SIZE = 5 * MiB
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]

#: Error codes that mean "try again later" whatever the HTTP status says.
TRANSIENT_CODES = frozenset({
    "InternalError", "OperationAborted", "RequestTimeout", "ServiceUnavailable", "SlowDown",
    "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
    "ConditionalRequestConflict",
})  # fmt: skip
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
#: How providers without Object Lock (or with it off) answer GetObjectLockConfiguration.
NO_LOCK_CODES = frozenset({
    "ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "NotImplemented",
    "InvalidRequest",
})  # fmt: skip


@dataclass(frozen=True)
class S3Options:
    """How far the app may manage a bucket, and how it uploads.

    ``manage_bucket``: ``ensure_ready`` may turn versioning on and set a default
    Object Lock retention; without it a bucket lacking versioning is refused.
    ``object_lock_mode``/``object_lock_days``: the retention applied where the
    bucket has Object Lock. GOVERNANCE can be lifted by a privileged account
    (the provider's admin), COMPLIANCE by nobody until it expires.
    """

    manage_bucket: bool = True
    object_lock_mode: LockMode = "GOVERNANCE"
    object_lock_days: int = 365
    part_size: int = 8 * MiB
    max_attempts: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.object_lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ValueError("object_lock_mode must be GOVERNANCE or COMPLIANCE.")
        if self.object_lock_days < 1:
            raise ValueError("object_lock_days must be at least 1.")
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 limit).")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")


def is_transient(error: Exception) -> bool:
    """True when a botocore error may go away on its own (network, timeouts, 5xx, throttling)."""
    if isinstance(error, BotocoreConnectionError | HTTPClientError | IncompleteReadError):
        return True
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return code in TRANSIENT_CODES or status >= 500 or status == 429
    return False


def error_code(error: ClientError) -> str:
    """The S3 error code of a botocore ClientError (``NoSuchKey``, ``404``...)."""
    return str(error.response.get("Error", {}).get("Code", ""))


class PreconditionFailedError(Exception):
    """A conditional write lost a race (If-None-Match or If-Match did not hold)."""


@contextmanager
def precondition() -> Iterator[None]:
    """Turn a failed If-None-Match/If-Match into PreconditionFailedError (handled by callers)."""
    try:
        yield
    except ClientError as error:
        if error_code(error) in {"PreconditionFailed", "412"}:
            raise PreconditionFailedError from error
        raise


_session_lock = threading.Lock()


@functools.cache
def _shared_session() -> boto3.session.Session:
    return boto3.session.Session()


def create_client(**arguments: Any) -> S3Client:
    """Create an S3 client from one process-wide boto3 session.

    Sharing the session means botocore parses the S3 service model once, not once
    per site; a session is not thread-safe, so clients are created under a lock
    (the clients themselves are thread-safe).
    """
    with _session_lock:
        return _shared_session().client("s3", **arguments)
