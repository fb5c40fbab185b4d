"""A storage site that is an S3-compatible bucket (AWS, MinIO, Ceph, moto in tests...).

One lazily created boto3 client per site, every botocore failure wrapped in
``SiteError`` with ``transient`` set for what a retry may cure. The bucket must
have versioning on: then even an accidental overwrite keeps the old bytes, and
healing a damaged copy is simply a new version on top of it. Where the bucket
has Object Lock, ``ensure_ready`` gives it a default retention so that not even
someone holding the credentials can remove a deposit before it expires.

Each object carries its SHA-256 as user metadata (``x-amz-meta-sha256``): the
digest the uploader promised and that ``put`` verified by reading the stored
version back. ``stat`` reports it without reading the bytes; ``hash`` reads them.

Uploads are written by hand (one part in memory at a time) instead of with
``upload_fileobj``: that way the source is hashed on the way up and a multipart
upload whose source does not match its promised digest is abandoned *before*
it is completed, so a wrong object never appears under a key, and the
response of the final call gives us the version id we then read back.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from vault.s3_client import (
    NO_LOCK_CODES,
    NOT_FOUND_CODES,
    LockMode,
    PreconditionFailedError,
    S3Options,
    create_client,
    error_code,
    is_transient,
    precondition,
)
from vault.sites import (
    Healed,
    SiteError,
    SiteReport,
    StorageSite,
    StoredObject,
    check_expected,
    check_expires_in,
    hash_stream,
    read_up_to,
    require_match,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

_SOURCE_DIFFERS = "the source does not match; nothing stored"


class S3Site:
    """A vault site in an S3 bucket. It can add and read objects; it has no way to remove one."""

    kind = "s3"

    def __init__(self, config: StorageSite, *, options: S3Options | None = None) -> None:
        if config["kind"] != "s3":
            raise ValueError(f"Storage site {config['name']!r} is not an S3 bucket.")
        self.name = config["name"]
        self.bucket = config["bucket"]
        self.options = options or S3Options()
        self._config = config
        self._s3: S3Client | None = None
        self._client_lock = threading.Lock()
        # Set by ensure_ready when the bucket has Object Lock but no default retention we may
        # set: then every upload carries its own retention instead.
        self._retention_per_object: tuple[LockMode, int] | None = None

    def __repr__(self) -> str:
        return f"S3Site({self.name!r}, bucket={self.bucket!r})"

    @property
    def client(self) -> S3Client:
        """The site's boto3 client, created on first use (boto3 clients are thread-safe)."""
        if self._s3 is None:
            with self._client_lock:
                if self._s3 is None:
                    self._s3 = self._new_client()
        return self._s3

    def _new_client(self) -> S3Client:
        config = self._config
        endpoint = config["endpoint_url"] or None
        return create_client(
            endpoint_url=endpoint,
            region_name=config["region"] or None,
            aws_access_key_id=config["access_key_id"] or None,
            aws_secret_access_key=config["secret_access_key"] or None,
            config=Config(
                signature_version="s3v4",
                # Other providers (MinIO, Ceph, moto) rarely have virtual-host DNS set up.
                s3={"addressing_style": "path" if endpoint else "auto"},
                retries={"mode": "standard", "total_max_attempts": self.options.max_attempts},
                connect_timeout=self.options.connect_timeout,
                read_timeout=self.options.read_timeout,
                user_agent_extra="software-escrow-vault",
            ),
        )

    # -- readiness -----------------------------------------------------------------------

    def ensure_ready(self) -> SiteReport:
        """Check the bucket exists, has versioning on (turned on if allowed) and no expiry rules.

        Where the bucket has Object Lock, make sure new objects get a retention:
        the bucket's default rule if it has one, else one we set (if allowed),
        else a retention on every upload. Raises SiteError naming the bucket
        when the site cannot keep objects safely.
        """
        notes: list[str] = []
        with self._errors("check the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if error_code(error) in {"404", "NoSuchBucket", "NotFound"}:
                    raise SiteError(
                        f"bucket {self.bucket!r} does not exist; create it (with Object Lock "
                        "if the provider has it) before using the site.",
                        site=self.name,
                    ) from error
                raise
            if self._versioning_status() != "Enabled":
                self._enable_versioning()
                notes.append("turned versioning on")
            self._refuse_expiry_rules()
            lock_mode, lock_days = self._prepare_object_lock(notes)
        return SiteReport(
            name=self.name,
            kind=self.kind,
            versioning=True,
            object_lock_mode=lock_mode,
            object_lock_days=lock_days,
            notes=tuple(notes),
        )

    def _versioning_status(self) -> str:
        return str(self.client.get_bucket_versioning(Bucket=self.bucket).get("Status", "Off"))

    def _enable_versioning(self) -> None:
        if not self.options.manage_bucket:
            raise SiteError(
                f"versioning is off on bucket {self.bucket!r}; turn it on (this site may not "
                "change bucket settings).",
                site=self.name,
            )
        try:
            self.client.put_bucket_versioning(
                Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        except ClientError as error:
            if is_transient(error):
                raise
            raise SiteError(
                f"versioning is off on bucket {self.bucket!r} and could not be turned on "
                f"({error_code(error)}); turn it on at the provider.",
                site=self.name,
            ) from error
        if self._versioning_status() != "Enabled":
            raise SiteError(
                f"versioning on bucket {self.bucket!r} did not turn on; check the provider.",
                site=self.name,
            )

    def _refuse_expiry_rules(self) -> None:
        # A lifecycle rule that expires objects or old versions would erase files behind our
        # back, breaking the promise that no stored file is ever erased.
        try:
            rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        except ClientError as error:
            if error_code(error) in {"NoSuchLifecycleConfiguration", "NotImplemented"}:
                return
            raise
        erasing = [
            str(rule.get("ID", "(unnamed)"))
            for rule in rules
            if rule.get("Status") == "Enabled"
            and ("Expiration" in rule or "NoncurrentVersionExpiration" in rule)
        ]
        if erasing:
            raise SiteError(
                f"bucket {self.bucket!r} has lifecycle rules that expire objects "
                f"({', '.join(erasing)}); remove them: the vault never erases a file.",
                site=self.name,
            )

    def _prepare_object_lock(self, notes: list[str]) -> tuple[str | None, int | None]:
        try:
            lock = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as error:
            if error_code(error) in NO_LOCK_CODES:
                notes.append("no Object Lock on this bucket (it can only be enabled at creation)")
                return None, None
            raise
        configuration = lock.get("ObjectLockConfiguration", {})
        if configuration.get("ObjectLockEnabled") != "Enabled":
            notes.append("no Object Lock on this bucket (it can only be enabled at creation)")
            return None, None
        retention = configuration.get("Rule", {}).get("DefaultRetention", {})
        if retention:
            days = retention.get("Days") or 365 * retention.get("Years", 0)
            notes.append("Object Lock default retention already set by the bucket owner")
            return str(retention.get("Mode")), days
        mode, days = self.options.object_lock_mode, self.options.object_lock_days
        if self.options.manage_bucket:
            try:
                self.client.put_object_lock_configuration(
                    Bucket=self.bucket,
                    ObjectLockConfiguration={
                        "ObjectLockEnabled": "Enabled",
                        "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
                    },
                )
                notes.append(f"set Object Lock default retention: {mode}, {days} days")
                return mode, days
            except ClientError as error:
                if is_transient(error):
                    raise
        self._retention_per_object = (mode, days)
        notes.append(f"Object Lock without a default rule: each upload gets {mode}, {days} days")
        return mode, days

    # -- writing ---------------------------------------------------------------------------

    def put(self, key: str, src: BinaryIO, *, sha256: str, size: int) -> StoredObject:
        """Store ``src`` under ``key`` unless the key is taken; read the new version back.

        Same content already there: returns it (after re-hashing it). Different
        content: SiteError "already holds a different object", nothing changed.
        The write is conditional (If-None-Match), so a concurrent writer cannot
        slip a different object in between our check and our write.
        """
        validate_key(key)
        check_expected(sha256, size)
        existing = self.stat(key)
        if existing is not None:
            return self._same_or_refuse(existing, sha256=sha256, size=size)
        try:
            version_id = self._upload(
                key, src, sha256=sha256, size=size, condition={"IfNoneMatch": "*"}
            )
        except PreconditionFailedError:
            existing = self.stat(key)
            if existing is None:
                raise SiteError(
                    f"{key!r} changed during put; try again.", site=self.name, transient=True
                ) from None
            return self._same_or_refuse(existing, sha256=sha256, size=size)
        return self._verify_version(key, version_id, sha256=sha256, size=size)

    def replace_corrupt(self, key: str, src: BinaryIO, *, sha256: str, size: int) -> Healed:
        """Heal a damaged object by putting a verified good copy on top as a new version.

        Versioning keeps the damaged version, which the result names. Refuses
        when the key holds nothing (use ``put``), when the current version is
        already good, or when versioning is off (the damaged bytes would be lost).
        """
        validate_key(key)
        check_expected(sha256, size)
        with self._errors(f"inspect {key!r}"):
            current = self._head(key)
        if current is None:
            raise SiteError(f"holds no object under {key!r} to heal; use put.", site=self.name)
        bad_version = current.get("VersionId")
        bad_sha256, bad_size = self._hash_version(key, bad_version)
        if (bad_sha256, bad_size) == (sha256, size):
            raise SiteError(
                f"the copy under {key!r} is good (sha256 {sha256}); refusing to replace it.",
                site=self.name,
            )
        with self._errors("check versioning"):
            if self._versioning_status() != "Enabled":
                raise SiteError(
                    f"versioning is off on bucket {self.bucket!r}; refusing to overwrite the "
                    f"damaged copy of {key!r}, which would then be lost.",
                    site=self.name,
                )
        try:
            # If-Match: replace exactly the version we judged damaged, not one written meanwhile.
            version_id = self._upload(
                key, src, sha256=sha256, size=size, condition={"IfMatch": current["ETag"]}
            )
        except PreconditionFailedError:
            raise SiteError(
                f"{key!r} changed while being healed; scrub it again.",
                site=self.name,
                transient=True,
            ) from None
        stored = self._verify_version(key, version_id, sha256=sha256, size=size)
        return Healed(stored=stored, bad_copy=f"version {bad_version}", bad_sha256=bad_sha256)

    def _same_or_refuse(self, existing: StoredObject, *, sha256: str, size: int) -> StoredObject:
        key = existing.key
        if existing.sha256 not in (None, sha256) or (
            existing.sha256 is None and existing.size != size
        ):
            raise SiteError(
                f"{key!r} already holds a different object (sha256 {existing.sha256}, "
                f"{existing.size} bytes; asked to store sha256 {sha256}, {size} bytes); "
                "a deposited object never changes.",
                site=self.name,
            )
        # The metadata is only what the uploader promised; prove the bytes still match.
        actual_sha256, actual_size = self._hash_version(key, existing.version_id)
        if (actual_sha256, actual_size) == (sha256, size):
            return StoredObject(key=key, size=size, sha256=sha256, version_id=existing.version_id)
        if existing.sha256 == sha256:
            require_match(
                self.name,
                f"{key!r} holds a damaged copy of this object",
                expected=(sha256, size),
                actual=(actual_sha256, actual_size),
                advice="; heal it with replace_corrupt",
            )
        raise SiteError(
            f"{key!r} already holds a different object (sha256 {actual_sha256}, {actual_size} "
            "bytes); a deposited object never changes.",
            site=self.name,
        )

    def _upload_arguments(self, sha256: str) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "Metadata": {"sha256": sha256},
            "ContentType": "application/octet-stream",
        }
        if self._retention_per_object is not None:
            mode, days = self._retention_per_object
            arguments["ObjectLockMode"] = mode
            arguments["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=days)
        return arguments

    def _upload(
        self, key: str, src: BinaryIO, *, sha256: str, size: int, condition: dict[str, Any]
    ) -> str | None:
        """Upload ``src``; return the new version id. Refuses a source that does not match."""
        arguments = self._upload_arguments(sha256)
        part_size = self.options.part_size
        if size <= part_size:
            body = read_up_to(src, size + 1)
            actual = (hashlib.sha256(body).hexdigest(), len(body))
            require_match(self.name, _SOURCE_DIFFERS, expected=(sha256, size), actual=actual)
            with self._errors(f"store {key!r}"), precondition():
                response = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, **arguments, **condition
                )
            return response.get("VersionId")
        with self._errors(f"start storing {key!r}"):
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32", **arguments
            )["UploadId"]
        try:
            digest = hashlib.sha256()
            total = 0
            parts: list[dict[str, Any]] = []
            # One part in memory at a time; the source is never read past size + 1 bytes.
            while total <= size and (body := read_up_to(src, min(part_size, size + 1 - total))):
                digest.update(body)
                total += len(body)
                with self._errors(f"store part {len(parts) + 1} of {key!r}"):
                    uploaded = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=body,
                        ChecksumAlgorithm="CRC32",
                    )
                part: dict[str, Any] = {"ETag": uploaded["ETag"], "PartNumber": len(parts) + 1}
                if "ChecksumCRC32" in uploaded:
                    part["ChecksumCRC32"] = uploaded["ChecksumCRC32"]
                parts.append(part)
                del body  # let the part go before the next one is read: one part in memory
            # Checked before completing: a source that broke its promise never becomes an object.
            actual = (digest.hexdigest(), total)
            require_match(self.name, _SOURCE_DIFFERS, expected=(sha256, size), actual=actual)
            with self._errors(f"finish storing {key!r}"), precondition():
                completed = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": cast(Any, parts)},
                    **condition,
                )
        except BaseException:
            # Abandon the unfinished upload so its parts do not linger; no object existed yet.
            with suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return completed.get("VersionId")

    def _verify_version(
        self, key: str, version_id: str | None, *, sha256: str, size: int
    ) -> StoredObject:
        require_match(
            self.name,
            f"read-back of {key!r} (version {version_id}) differs",
            expected=(sha256, size),
            actual=self._hash_version(key, version_id),
        )
        return StoredObject(key=key, size=size, sha256=sha256, version_id=version_id)

    # -- reading ---------------------------------------------------------------------------

    def open(self, key: str, *, version_id: str | None = None) -> BinaryIO:
        """Return a streaming reader of the object (the current version unless one is named)."""
        validate_key(key)
        with self._errors(f"open {key!r}"):
            version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key, **version)
            except ClientError as error:
                if error_code(error) in NOT_FOUND_CODES:
                    raise SiteError(f"holds no object under {key!r}.", site=self.name) from error
                raise
        return io.BufferedReader(
            _BodyReader(response["Body"], site=self, key=key), io.DEFAULT_BUFFER_SIZE
        )

    def stat(self, key: str) -> StoredObject | None:
        """Size, recorded SHA-256 and version id of the current version, or None if absent."""
        validate_key(key)
        with self._errors(f"stat {key!r}"):
            head = self._head(key)
        if head is None:
            return None
        return StoredObject(
            key=key,
            size=int(head["ContentLength"]),
            sha256=head.get("Metadata", {}).get("sha256"),
            version_id=head.get("VersionId"),
        )

    def hash(self, key: str) -> str:
        """Re-read the current version and return its SHA-256 (hex)."""
        validate_key(key)
        return self._hash_version(key, None)[0]

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix`` (current objects, in S3's sorted order)."""
        validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list objects"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def presigned_url(self, key: str, *, expires_in: int) -> str:
        """A presigned GET link to the object, valid ``expires_in`` seconds (1 to 3600)."""
        validate_key(key)
        check_expires_in(expires_in)
        with self._errors(f"sign a link to {key!r}"):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
            )

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            if error_code(error) in NOT_FOUND_CODES:
                return None
            raise

    def _hash_version(self, key: str, version_id: str | None) -> tuple[str, int]:
        with self.open(key, version_id=version_id) as stream:
            return hash_stream(stream)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn botocore errors into SiteError, marking the ones a retry may cure."""
        try:
            yield
        except ClientError as error:
            raise SiteError(
                f"could not {action} in bucket {self.bucket!r}: {error_code(error)} "
                f"{error.response.get('Error', {}).get('Message', '')}".rstrip(),
                site=self.name,
                transient=is_transient(error),
            ) from error
        except BotoCoreError as error:
            raise SiteError(
                f"could not {action} in bucket {self.bucket!r}: {error}",
                site=self.name,
                transient=is_transient(error),
            ) from error


class _BodyReader(io.RawIOBase):
    """A raw reader over a botocore StreamingBody that raises SiteError, not botocore errors."""

    def __init__(self, body: StreamingBody, *, site: S3Site, key: str) -> None:
        super().__init__()
        self._body = body
        self._site = site
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        with self._site._errors(f"read {self._key!r}"):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
