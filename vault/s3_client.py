"""The S3 client side of a storage site: options, error classification, clients.

One process-wide boto3 session, clients created from it under a lock; every
botocore error classified once here as transient (a retry may cure it) or not.
vault/sites_s3.py builds the storage site on top of this.

boto3 and botocore are imported by the functions that need them, never at
import time: config/settings.py imports S3Options from here, and loading boto3
would cost every web worker about 8 MiB even where no S3 site is configured."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
#: S3 refuses multipart parts smaller than this (except the last one).
MIN_PART_SIZE = 5 * MiB
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]

#: The longest a request to a site that accepts connections but never answers (a hung
#: or black-holed endpoint) may hold its caller, every retry included. A web worker
#: held longer than this is a worker the pipeline cannot use.
MAX_HUNG_WAIT = 30.0
#: botocore's standard retry mode waits a random time up to this * 2**(n-1) before
#: try n+1 (1 s, 2 s, 4 s...; 50 ms for errors that are not throttling).
_FIRST_BACKOFF = 1.0

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
    ``connect_timeout``/``read_timeout``/``max_attempts``: how long one request may
    wait (read: between two bytes) and how often botocore tries it. Their defaults
    come from ESCROW_S3_CONNECT_TIMEOUT, ESCROW_S3_READ_TIMEOUT and
    ESCROW_S3_MAX_ATTEMPTS; together they must fit MAX_HUNG_WAIT, so a hung site
    fails a request (SiteUnavailable) instead of holding a web worker for minutes.
    """

    manage_bucket: bool = True
    object_lock_mode: LockMode = "GOVERNANCE"
    object_lock_days: int = 365
    part_size: int = 8 * MiB
    max_attempts: int = field(default_factory=lambda: int(_setting("ESCROW_S3_MAX_ATTEMPTS", 2)))
    connect_timeout: float = field(
        default_factory=lambda: float(_setting("ESCROW_S3_CONNECT_TIMEOUT", 5.0))
    )
    read_timeout: float = field(
        default_factory=lambda: float(_setting("ESCROW_S3_READ_TIMEOUT", 12.0))
    )

    def __post_init__(self) -> None:
        if self.object_lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ValueError("object_lock_mode must be GOVERNANCE or COMPLIANCE.")
        if self.object_lock_days < 1:
            raise ValueError("object_lock_days must be at least 1.")
        if self.part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (an S3 limit).")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1.")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be positive (seconds).")
        if self.hung_wait > MAX_HUNG_WAIT:
            raise ValueError(
                f"a hung site would hold a request for up to {self.hung_wait:g} s "
                f"({self.max_attempts} attempts of up to "
                f"{max(self.connect_timeout, self.read_timeout):g} s): more than "
                f"{MAX_HUNG_WAIT:g} s. Lower the timeouts or the attempts."
            )

    @property
    def hung_wait(self) -> float:
        """The longest one request waits on a site that never answers, retries included:
        each attempt ends at the connect timeout (no answer to the connection) or the
        read timeout (connected, then silence), plus botocore's backoff between them."""
        attempt = max(self.connect_timeout, self.read_timeout)
        backoff = _FIRST_BACKOFF * (2 ** (self.max_attempts - 1) - 1)
        return self.max_attempts * attempt + backoff


def _setting(name: str, default: float) -> Any:
    """A Django setting when Django is configured (the app), else the default (scripts)."""
    from django.conf import settings

    return getattr(settings, name, default) if settings.configured else default


def is_transient(error: Exception) -> bool:
    """True when a botocore error may go away on its own (network, timeouts, 5xx, throttling)."""
    from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
    from botocore.exceptions import ConnectionError as BotocoreConnectionError

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
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as error:
        if error_code(error) in {"PreconditionFailed", "412"}:
            raise PreconditionFailedError from error
        raise


_session_lock = threading.Lock()


@functools.cache
def _shared_session() -> boto3.session.Session:
    import boto3.session

    return boto3.session.Session()


def bounded(config: Config | None) -> Config:
    """``config`` with the waits every client of ours must have: retries counted as total
    attempts, and connect and read timeouts, taken from S3Options where not given.

    botocore's ``retries={"max_attempts": n}`` counts *retries* (n + 1 tries in all),
    whereas S3Options.max_attempts counts every try, so it is passed on as
    ``total_max_attempts``; and botocore's own timeouts (60 s each, 4 tries) let one
    request to a hung site hold its caller for four minutes."""
    from botocore.config import Config

    options = S3Options()
    config = config or Config()
    # Config fills in botocore's defaults (60 s timeouts) for what it was not given;
    # only what the caller chose is kept (botocore records it, and merge() relies on it).
    given: dict[str, Any] = getattr(config, "_user_provided_options", {})
    retries = dict(given.get("retries") or {})
    if "max_attempts" in retries and "total_max_attempts" not in retries:
        retries["total_max_attempts"] = retries.pop("max_attempts")
    retries.setdefault("mode", "standard")
    retries.setdefault("total_max_attempts", options.max_attempts)
    return config.merge(
        Config(
            retries=retries,  # type: ignore[arg-type]
            connect_timeout=given.get("connect_timeout", options.connect_timeout),
            read_timeout=given.get("read_timeout", options.read_timeout),
        )
    )


def create_client(**arguments: Any) -> S3Client:
    """Create an S3 client from one process-wide boto3 session, its waits bounded.

    Sharing the session means botocore parses the S3 service model once, not once
    per site; a session is not thread-safe, so clients are created under a lock
    (the clients themselves are thread-safe).
    """
    arguments["config"] = bounded(arguments.get("config"))
    with _session_lock:
        return _shared_session().client("s3", **arguments)
