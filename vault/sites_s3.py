"""A storage site that is an S3-compatible bucket (AWS, MinIO, Ceph, moto in tests...).

One lazily created boto3 client per site, every botocore failure wrapped in
``SiteError`` with ``transient`` set for what a retry may cure. The bucket must
have versioning on: then even an accidental overwrite keeps the old bytes, and
healing a damaged copy is simply a new version on top of it. Where the bucket
has Object Lock, ``ensure_ready`` gives it a default retention so that not even
someone holding the credentials can remove a deposit before it expires.

An object carries its SHA-256 as user metadata (``x-amz-meta-sha256``) only when
the site itself checked the bytes against that digest before storing them:
every object ``put`` stores (it also reads the stored version back), and an
object written in one pass (``begin_put``) that fits in one part, which goes up
in a single request at ``commit`` with its bytes hashed in memory. ``stat``
reports the digest without reading the bytes; ``hash`` reads them.

A larger one-pass object carries no digest: S3 fixes user metadata when the
multipart upload starts, before the digest exists, and it cannot be added later
without writing a second version (a copy, under Object Lock kept for years).
S3's own checksums do not help: a multipart SHA-256 checksum is a digest of the
parts' digests, not of the object. And writing the caller's promise in a tag
would record a hash nobody checked, which readers would then trust. So ``stat``
says ``sha256=None`` for such an object, as ``StoredObject`` allows, and readers
that need the digest hash the bytes (intake's read-back of a stored sealed file
and ``put``'s "same content?" check already do). What the site does check is
that every part arrived intact, and the total size.

Every part, and every object sent in one request, carries its MD5 (Content-MD5,
besides botocore's CRC32): S3 refuses bytes damaged on the way (BadDigest). Not
every provider checks those headers (moto checks neither), so the ETag S3
answers with, the MD5 of what it received, is compared with ours too, wherever
it is one (not under SSE-KMS or SSE-C): a damaged part is SiteError and its
upload is aborted, so nothing becomes visible. (A single request cannot be taken
back: where such a provider kept damaged bytes, the SiteError names the version.)

Uploads are written by hand (one part in memory at a time) instead of with
``upload_fileobj``: that way the source is hashed on the way up and a multipart
upload whose source does not match its promised digest is abandoned *before*
it is completed, so a wrong object never appears under a key, and the
response of the final call gives us the version id we then read back.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import threading
from collections.abc import Callable, Iterator, Mapping
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
#: An ETag that is the MD5 of the stored bytes (quotes stripped).
_MD5_ETAG = re.compile(r"[0-9a-f]{32}")


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
        stored, created = self._store_unless_taken(
            key,
            lambda condition: self._upload(key, src, sha256=sha256, size=size, condition=condition),
            sha256=sha256,
            size=size,
        )
        if not created:
            return stored
        return self._verify_version(key, stored.version_id, sha256=sha256, size=size)

    def begin_put(self, key: str) -> S3PendingObject:
        """Start writing a new object under ``key`` in one pass (see ``S3PendingObject``).

        No request is made yet: a multipart upload starts with the first full part.
        """
        return S3PendingObject(self, validate_key(key))

    def _store_unless_taken(
        self,
        key: str,
        write: Callable[[dict[str, Any]], str | None],
        *,
        sha256: str,
        size: int,
    ) -> tuple[StoredObject, bool]:
        """Create ``key`` with ``write`` unless taken; return the object and whether it is new.

        ``write`` is handed the If-None-Match condition to send, so an object that a
        concurrent writer slips in between our check and our write makes the write
        lose instead of being replaced. A key holding the same content gives that
        object (re-hashed, see ``_same_or_refuse``); different content is SiteError.
        """
        existing = self.stat(key)
        if existing is None:
            try:
                version_id = write({"IfNoneMatch": "*"})
            except PreconditionFailedError:
                existing = self.stat(key)
                if existing is None:
                    raise SiteError(
                        f"{key!r} changed while being stored; try again.",
                        site=self.name,
                        transient=True,
                    ) from None
            else:
                return StoredObject(key=key, size=size, sha256=sha256, version_id=version_id), True
        return self._same_or_refuse(existing, sha256=sha256, size=size), False

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

    def _upload_arguments(self, sha256: str | None) -> dict[str, Any]:
        """What every new object gets: its checked digest (when known), type and retention."""
        arguments: dict[str, Any] = {"ContentType": "application/octet-stream"}
        if sha256 is not None:
            arguments["Metadata"] = {"sha256": sha256}
        if self._retention_per_object is not None:
            mode, days = self._retention_per_object
            arguments["ObjectLockMode"] = mode
            arguments["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=days)
        return arguments

    def _upload(
        self, key: str, src: BinaryIO, *, sha256: str, size: int, condition: dict[str, Any]
    ) -> str | None:
        """Upload ``src``; return the new version id. Refuses a source that does not match."""
        part_size = self.options.part_size
        if size <= part_size:
            body = read_up_to(src, size + 1)
            return self._put_whole(key, body, sha256=sha256, size=size, condition=condition)
        upload = _MultipartUpload(self, key, self._upload_arguments(sha256))
        try:
            digest = hashlib.sha256()
            total = 0
            # One part in memory at a time; the source is never read past size + 1 bytes.
            while total <= size and (body := read_up_to(src, min(part_size, size + 1 - total))):
                digest.update(body)
                total += len(body)
                upload.send(body)
                del body  # let the part go before the next one is read: one part in memory
            # Checked before completing: a source that broke its promise never becomes an object.
            actual = (digest.hexdigest(), total)
            require_match(self.name, _SOURCE_DIFFERS, expected=(sha256, size), actual=actual)
            return upload.complete(condition)
        except BaseException:
            upload.abandon()
            raise

    def _put_whole(
        self,
        key: str,
        body: bytes | bytearray,
        *,
        sha256: str,
        size: int,
        condition: dict[str, Any],
    ) -> str | None:
        """Store an object of at most one part in one request, after checking it matches.

        Because the bytes were hashed here, the digest goes into the metadata. The
        request carries their MD5, so S3 refuses them if they arrive damaged; a provider
        that ignores it stores them, which its ETag then shows (SiteError naming the
        damaged version: one request cannot be abandoned the way a multipart upload is)."""
        actual = (hashlib.sha256(body).hexdigest(), len(body))
        require_match(self.name, _SOURCE_DIFFERS, expected=(sha256, size), actual=actual)
        content_md5, md5 = _content_md5(body)
        with self._errors(f"store {key!r}"), precondition():
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentMD5=content_md5,
                **self._upload_arguments(sha256),
                **condition,
            )
        version_id = response.get("VersionId")
        self._require_intact(
            repr(key),
            response,
            sent_md5=md5,
            outcome=f"; the site kept them anyway, as version {version_id}: heal it with "
            "replace_corrupt",
        )
        return version_id

    def _require_intact(
        self, what: str, response: Mapping[str, object], *, sent_md5: str, outcome: str
    ) -> None:
        """Refuse a write whose bytes arrived damaged. S3 itself refuses a body that does
        not match its Content-MD5 (BadDigest), but not every provider checks the header;
        the ETag a write answers with is the MD5 of what arrived, wherever it is one."""
        received_md5 = _md5_in_etag(response)
        if received_md5 is not None and received_md5 != sent_md5:
            raise SiteError(
                f"{what} arrived damaged (the site received bytes with MD5 {received_md5}, "
                f"not the {sent_md5} sent){outcome}",
                site=self.name,
            )

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
        """Size, recorded SHA-256 and version id of the current version, or None if absent.

        The SHA-256 is None for an object written in one pass in several parts (see the
        module docstring): the caller hashes it if it needs to know."""
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


def _content_md5(body: bytes | bytearray) -> tuple[str, str]:
    """The MD5 of ``body`` as the Content-MD5 header carries it (base64) and as an ETag
    shows it (hex), hashed over the buffer the caller already holds."""
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii"), digest.hex()


def _md5_in_etag(response: Mapping[str, object]) -> str | None:
    """The MD5 of the bytes a PutObject or UploadPart stored, read from its ETag; None
    where the ETag is no MD5: under SSE-KMS and SSE-C encryption it is something else."""
    encryption = str(response.get("ServerSideEncryption", ""))
    if encryption.startswith("aws:kms") or response.get("SSECustomerAlgorithm"):
        return None
    etag = str(response.get("ETag", "")).strip('"').lower()
    return etag if _MD5_ETAG.fullmatch(etag) else None


class _MultipartUpload:
    """One multipart upload under way: parts sent one at a time, each with an MD5 (and a
    CRC32) that S3 checks on arrival and an ETag we check, then completed (under a
    condition) or aborted. ``put`` and ``S3PendingObject`` both store large objects
    through it."""

    def __init__(self, site: S3Site, key: str, arguments: dict[str, Any]) -> None:
        self._site = site
        self.key = key
        self._parts: list[dict[str, Any]] = []
        with site._errors(f"start storing {key!r}"):
            self.upload_id = site.client.create_multipart_upload(
                Bucket=site.bucket, Key=key, ChecksumAlgorithm="CRC32", **arguments
            )["UploadId"]

    def send(self, body: bytes | bytearray) -> None:
        """Upload ``body`` as the next part; it may be reused once this returns.

        A part that arrives damaged is SiteError naming it (the caller then aborts)."""
        number = len(self._parts) + 1
        content_md5, md5 = _content_md5(body)
        with self._site._errors(f"store part {number} of {self.key!r}"):
            uploaded = self._site.client.upload_part(
                Bucket=self._site.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                ContentMD5=content_md5,
                ChecksumAlgorithm="CRC32",
            )
        self._site._require_intact(
            f"part {number} of {self.key!r}", uploaded, sent_md5=md5, outcome="; nothing stored"
        )
        part: dict[str, Any] = {"ETag": uploaded["ETag"], "PartNumber": number}
        if "ChecksumCRC32" in uploaded:
            part["ChecksumCRC32"] = uploaded["ChecksumCRC32"]
        self._parts.append(part)

    def complete(self, condition: dict[str, Any]) -> str | None:
        """Make the parts one object if ``condition`` holds; return its version id.

        A failed condition raises PreconditionFailedError and leaves the upload to abort."""
        with self._site._errors(f"finish storing {self.key!r}"), precondition():
            completed = self._site.client.complete_multipart_upload(
                Bucket=self._site.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": cast(Any, self._parts)},
                **condition,
            )
        return completed.get("VersionId")

    def abort(self) -> None:
        """Discard the parts so they do not linger (and cost) in the bucket; SiteError if the
        site cannot be told. An upload the site no longer knows counts as aborted."""
        with self._site._errors(f"abort the unfinished upload of {self.key!r}"):
            try:
                self._site.client.abort_multipart_upload(
                    Bucket=self._site.bucket, Key=self.key, UploadId=self.upload_id
                )
            except ClientError as error:
                if error_code(error) != "NoSuchUpload":
                    raise

    def abandon(self) -> None:
        """Abort on the way out of a failure, which is the error worth reporting."""
        with suppress(SiteError):
            self.abort()


class S3PendingObject:
    """An object being written to an S3 site in one pass (``S3Site.begin_put``).

    At most one part is held in memory: a buffer of ``part_size`` bytes, sent as the
    next part of a multipart upload when it is full and more bytes arrive. The upload
    starts with the first such part, so an object of at most one part never starts
    one: ``commit`` sends it in a single request, hashed here first. Nothing is
    visible under ``key`` until ``commit`` completes the upload, under the same
    If-None-Match condition as ``put``.

    A failed ``write`` aborts (which bytes arrived is unknown), as a failed ``commit``
    does; writing or committing after the end is SiteError. An ``abort`` that cannot
    reach the site raises SiteError (or, while another error is on its way out, adds
    a note to it) and may be called again later: the upload is forgotten only once
    the site dropped it.
    """

    def __init__(self, site: S3Site, key: str) -> None:
        self.key = key
        self._site = site
        self._buffer = bytearray()
        self._filled = 0
        self._received = 0
        self._upload: _MultipartUpload | None = None
        self._ended_by: str | None = None  # "commit" or "abort" once one of them ran

    def __repr__(self) -> str:
        return f"S3PendingObject({self._site.name!r}, {self.key!r}, {self._received} bytes)"

    def write(self, data: bytes | memoryview, /) -> None:
        """Append ``data``, copied into the part buffer (sent whenever it is full)."""
        self._require_open()
        view = memoryview(data).cast("B")
        part_size = self._site.options.part_size
        try:
            while view:
                if self._filled == part_size:
                    self._send_buffer()
                if not self._buffer:
                    self._buffer = bytearray(part_size)
                taken = min(part_size - self._filled, len(view))
                self._buffer[self._filled : self._filled + taken] = view[:taken]
                self._filled += taken
                self._received += taken
                view = view[taken:]
        except BaseException as error:
            self._abort_after_failure(error)
            raise

    def commit(self, *, sha256: str, size: int) -> StoredObject:
        """Make the object visible under ``key`` if exactly ``size`` bytes were written.

        The key already holding this very content returns that object, as ``put`` does
        (this upload is then dropped); different content is SiteError. Every failure
        aborts: nothing becomes visible and no upload is left behind."""
        try:
            self._require_open()
            check_expected(sha256, size)
            self._require_whole(size)
            stored, created = self._site._store_unless_taken(
                self.key,
                lambda condition: self._finish(sha256=sha256, size=size, condition=condition),
                sha256=sha256,
                size=size,
            )
            if not created:
                self.abort()
        except BaseException as error:
            self._abort_after_failure(error)
            raise
        self._ended_by = "commit"
        return stored

    def abort(self) -> None:
        """Discard what was written; idempotent, and nothing to do after a ``commit``."""
        if self._ended_by == "commit":
            return
        self._ended_by = "abort"
        self._buffer, self._filled = bytearray(), 0
        if self._upload is not None:
            self._upload.abort()
            self._upload = None

    def __enter__(self) -> S3PendingObject:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._ended_by == "commit":
            return
        error = exc_info[1]
        if isinstance(error, BaseException):
            self._abort_after_failure(error)
        else:
            self.abort()

    def _require_open(self) -> None:
        if self._ended_by is not None:
            raise SiteError(
                f"the write of {self.key!r} was already ended (by {self._ended_by}).",
                site=self._site.name,
            )

    def _require_whole(self, size: int) -> None:
        if self._received != size:
            raise SiteError(
                f"{self.key!r} received {self._received} bytes, not the {size} promised; "
                "nothing stored",
                site=self._site.name,
            )

    def _send_buffer(self) -> None:
        """Send the full buffer as the next part, starting the upload with the first one."""
        if self._upload is None:
            self._upload = _MultipartUpload(
                self._site, self.key, self._site._upload_arguments(None)
            )
        self._upload.send(self._buffer)
        self._filled = 0

    def _finish(self, *, sha256: str, size: int, condition: dict[str, Any]) -> str | None:
        """Store what is buffered: the whole object, or the last part of the upload."""
        del self._buffer[self._filled :]
        if self._upload is None:
            return self._site._put_whole(
                self.key, self._buffer, sha256=sha256, size=size, condition=condition
            )
        self._upload.send(self._buffer)
        version_id = self._upload.complete(condition)
        self._upload = None
        return version_id

    def _abort_after_failure(self, error: BaseException) -> None:
        """Abort while ``error`` is on its way out; a failed abort becomes a note on it."""
        try:
            self.abort()
        except SiteError as abort_error:
            error.add_note(f"and the unfinished upload is left: {abort_error}")
