"""The transparency log of deposits: append, checkpoint, prove, and take the notaries'
witness co-signatures.

The log is an RFC 6962 Merkle tree (``vault.merkle``) over every sealed deposit's
manifest SHA-256, in sealing order. Its state is published as C2SP checkpoints
(``vault.signed_note``) signed by the system key, with an SSHSIG over the same body so
OpenSSH alone checks them. The log is append-only: no function here updates or deletes
a leaf, a checkpoint or a witness signature (and the database refuses it as well).

Performance: the root and every proof are computed from all leaf hashes read from the
database, O(n) in the tree size: for 10^5 deposits that is 3.2 MB read and about 2x10^5
SHA-256 computations per proof, well under a second. A log of millions would keep the
tree's interior nodes (or a tile cache, as the C2SP tlog-tiles layout does) instead."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Role, User
from records.services.audit import audit_record
from transparency.models import Checkpoint, LogHead, LogLeaf, WitnessKey, WitnessSignature
from vault import merkle, signed_note, sshsig
from vault.keys import system_signing_key

#: How often an append is tried again after losing a race on the unique index.
APPEND_ATTEMPTS = 3

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LogError(ValueError):
    """A question the log cannot answer as asked (sizes out of range): a client error."""


@dataclass(frozen=True)
class InclusionProof:
    """A deposit's inclusion proof against one signed checkpoint (hex hashes)."""

    deposit_id: int
    index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]
    root: str
    checkpoint: str
    checkpoint_sshsig: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what receipts, certificates, the API and the safe export carry."""
        return asdict(self)


def _head() -> LogHead:
    """The head row, locked until the caller's transaction ends (PostgreSQL); the
    migration seeds it, ``get_or_create`` only matters after a test flush."""
    head, _ = LogHead.objects.select_for_update().get_or_create(id=1)
    return head


def log_append(*, deposit_id: int, manifest_sha256: str) -> LogLeaf:
    """Append a sealed deposit's manifest hash to the log; idempotent per (deposit,
    manifest), so a retried sealing adds nothing. Called by escrow when a deposit is
    sealed, in the same transaction as the transition.

    Appenders serialise on the head row (SELECT ... FOR UPDATE), so every leaf takes
    the next index: no fork (two leaves at one index) and no gap. The unique indexes
    are the last guard: a lost race raises ``IntegrityError`` inside a savepoint, and
    the append is tried again against the new head."""
    if not isinstance(manifest_sha256, str) or not _SHA256.fullmatch(manifest_sha256):
        raise ValidationError(
            "The log takes a manifest SHA-256 of 64 lower-case hex digits, "
            f"not {manifest_sha256!r}."
        )
    if deposit_id < 1:
        raise ValidationError(f"{deposit_id} is not a deposit id.")
    for attempt in range(1, APPEND_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                head = _head()
                existing = LogLeaf.objects.filter(
                    deposit_id=deposit_id, manifest_sha256=manifest_sha256
                ).first()
                if existing is not None:
                    return existing
                leaf = LogLeaf(
                    index=head.size,
                    deposit_id=deposit_id,
                    manifest_sha256=manifest_sha256,
                    leaf_hash=merkle.leaf_hash(bytes.fromhex(manifest_sha256)).hex(),
                    appended_at=timezone.now(),
                )
                leaf.save(force_insert=True)
                head.size += 1
                head.save(update_fields=["size"])
                return leaf
        except IntegrityError:
            if attempt == APPEND_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def log_append_many(entries: list[tuple[int, str]]) -> int:
    """Append many sealed deposits at once, in the order given, under one lock of the
    head: for seeding a demo at scale and for deposits sealed before the log existed.
    Entries already in the log are skipped; returns how many leaves were added."""
    for deposit_id, manifest_sha256 in entries:
        if deposit_id < 1 or not _SHA256.fullmatch(manifest_sha256):
            raise ValidationError(f"Not a sealed deposit: {deposit_id}, {manifest_sha256!r}.")
    with transaction.atomic():
        head = _head()
        known = set(LogLeaf.objects.values_list("deposit_id", "manifest_sha256"))
        now = timezone.now()
        leaves: list[LogLeaf] = []
        for deposit_id, manifest_sha256 in entries:
            if (deposit_id, manifest_sha256) in known:
                continue
            known.add((deposit_id, manifest_sha256))
            leaves.append(
                LogLeaf(
                    index=head.size + len(leaves),
                    deposit_id=deposit_id,
                    manifest_sha256=manifest_sha256,
                    leaf_hash=merkle.leaf_hash(bytes.fromhex(manifest_sha256)).hex(),
                    appended_at=now,
                )
            )
        LogLeaf.objects.bulk_create(leaves, batch_size=2000)
        head.size += len(leaves)
        head.save(update_fields=["size"])
    return len(leaves)


def _leaf_hashes(size: int | None = None) -> list[bytes]:
    """The first ``size`` leaf hashes (all when None), checked to be gap-free."""
    rows = LogLeaf.objects.order_by("index").values_list("index", "leaf_hash")
    if size is not None:
        rows = rows[:size]
    hashes = []
    for position, (index, leaf_hash) in enumerate(rows):
        if index != position:
            raise LogError(f"the log has a gap: leaf {position} is missing (found {index}).")
        hashes.append(bytes.fromhex(leaf_hash))
    if size is not None and len(hashes) != size:
        raise LogError(f"the log has {len(hashes)} leaves, not {size}.")
    return hashes


@functools.lru_cache(maxsize=4)
def _tree(size: int, root: str) -> tuple[bytes, ...]:
    """The leaf hashes of a signed checkpoint's tree, read once and checked against the
    root it signed: leaves never change, so the same (size, root) always means the same
    hashes and they are kept for the next proof (a safe export asks for one per
    deposit). A mismatch means the leaves were altered under a published checkpoint."""
    hashes = _leaf_hashes(size)
    if merkle.root(hashes).hex() != root:
        raise LogError(
            f"the log's first {size} leaves no longer hash to the root of the checkpoint "
            "signed at that size: the log was altered."
        )
    return tuple(hashes)


def _checkpoint_for(hashes: list[bytes]) -> Checkpoint:
    """The stored checkpoint for the tree of ``hashes``, signed and stored if new."""
    size = len(hashes)
    existing = Checkpoint.objects.filter(size=size).first()
    if existing is not None:
        return existing
    key = system_signing_key()
    origin = signed_note.log_origin()
    root = merkle.root(hashes)
    body = signed_note.checkpoint_body(origin, size, root)
    try:
        with transaction.atomic():
            return Checkpoint.objects.create(
                size=size,
                root=root.hex(),
                note=signed_note.sign_note(body, origin, key),
                sshsig=sshsig.sign(body.encode(), key, sshsig.namespace("checkpoint")),
                created_at=timezone.now(),
            )
    except IntegrityError:
        # Another request stored the same size at the same moment: same tree, same root.
        return Checkpoint.objects.get(size=size)


def checkpoint_latest() -> Checkpoint | None:
    """The signed checkpoint of the whole log as it is now, stored on first use (one per
    size, so asking twice stores nothing new); None while the log is empty."""
    hashes = _leaf_hashes()
    if not hashes:
        return None
    return _checkpoint_for(hashes)


def checkpoint_at(size: int) -> Checkpoint | None:
    """The stored checkpoint of exactly ``size`` leaves, if one was published."""
    return Checkpoint.objects.filter(size=size).first()


def inclusion_proof_for(
    deposit_id: int, *, checkpoint: Checkpoint | None = None
) -> InclusionProof | None:
    """The proof that the deposit's (latest) manifest hash is in the tree of
    ``checkpoint`` (default: the latest); None when the deposit was never sealed into
    the log or is not in that checkpoint. ``LogError`` when the stored leaves no longer
    match the checkpoint's root."""
    leaf = LogLeaf.objects.filter(deposit_id=deposit_id).order_by("-index").first()
    if leaf is None:
        return None
    checkpoint = checkpoint or checkpoint_latest()
    if checkpoint is None or leaf.index >= checkpoint.size:
        return None
    hashes = _tree(checkpoint.size, checkpoint.root)
    return InclusionProof(
        deposit_id=deposit_id,
        index=leaf.index,
        tree_size=checkpoint.size,
        leaf_hash=leaf.leaf_hash,
        proof=[node.hex() for node in merkle.inclusion_proof(leaf.index, hashes)],
        root=checkpoint.root,
        checkpoint=checkpoint.note,
        checkpoint_sshsig=checkpoint.sshsig,
    )


def log_size() -> int:
    """How many leaves the log holds (committed, as this transaction sees them)."""
    return LogLeaf.objects.count()


def consistency_proof_between(old_size: int, new_size: int) -> list[str]:
    """The RFC 6962 proof (hex) that the tree of ``old_size`` leaves is a prefix of the
    tree of ``new_size``; ``LogError`` naming the problem when the sizes do not fit."""
    size = log_size()
    if old_size < 1:
        raise LogError(f"old size must be at least 1, not {old_size}.")
    if old_size > new_size:
        raise LogError(f"old size {old_size} is larger than new size {new_size}.")
    if new_size > size:
        raise LogError(f"new size {new_size} is larger than the log ({size} leaves).")
    hashes = _leaf_hashes(new_size)
    return [node.hex() for node in merkle.consistency_proof(old_size, hashes)]


def root_at(size: int) -> str:
    """The tree root (hex) of the first ``size`` leaves."""
    if not 0 <= size <= log_size():
        raise LogError(f"size {size} is outside the log (0 to {log_size()} leaves).")
    return merkle.root(_leaf_hashes(size)).hex()


def witness_signatures() -> QuerySet[WitnessSignature]:
    """Every notary co-signature, oldest checkpoint first; each has ``.checkpoint`` (the
    body it signed), ``.signature``, ``.public_key``, ``.notary`` and ``.signed_at``."""
    return WitnessSignature.objects.select_related("signed_checkpoint", "key", "notary").order_by(
        "signed_checkpoint__size", "signed_at", "pk"
    )


def witness_key_active(notary: User) -> WitnessKey | None:
    """The notary's current witness key, if it registered one."""
    return WitnessKey.objects.filter(notary=notary, retired_at__isnull=True).first()


def _fingerprint(line: str) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def witness_key_add(*, notary: User, public_key_line: str) -> WitnessKey:
    """Register (or replace) the notary's SSH Ed25519 public key for witness
    co-signatures. The old key is retired, not deleted: what it signed still verifies.
    Anything but one ``ssh-ed25519`` line is refused, naming the problem."""
    if notary.role != Role.NOTARY:
        raise ValidationError("Only a notary can hold a witness key.")
    try:
        public_key = sshsig.load_openssh_public_key(public_key_line)
    except sshsig.SshSigError as error:
        raise ValidationError(f"Not a usable witness key: {error}.") from None
    line = sshsig.openssh_public_key(public_key)
    fingerprint = _fingerprint(line)
    with transaction.atomic():
        current = witness_key_active(notary)
        if current is not None and current.public_key == line:
            return current
        if WitnessKey.objects.filter(public_key=line).exclude(notary=notary).exists():
            raise ValidationError(
                "This key is registered for another notary: each witness keeps a key of "
                "its own, or a co-signature proves nothing about who saw the log."
            )
        now = timezone.now()
        if current is not None:
            current.retired_at = now
            current.save(update_fields=["retired_at"])
        key = WitnessKey.objects.create(
            notary=notary, public_key=line, fingerprint=fingerprint, added_at=now
        )
        audit_record(
            action="witness_key.add",
            actor=notary,
            target=key,
            details={
                "fingerprint": fingerprint,
                "replaces": current.fingerprint if current is not None else "",
            },
        )
    return key


def _normalised_signature(signature: str) -> str:
    """A pasted signature as ``ssh-keygen`` wrote it: Unix line ends, one final newline."""
    text = signature.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text + "\n"


def witness_cosign(*, notary: User, checkpoint: Checkpoint, signature: str) -> WitnessSignature:
    """Record the notary's co-signature of ``checkpoint``: an SSHSIG (witness namespace)
    over the checkpoint body, made with the notary's own key, which the system never
    sees. A signature that does not verify with the notary's active witness key is
    refused, naming why; signing the same checkpoint again returns the first record."""
    key = witness_key_active(notary)
    if key is None:
        raise ValidationError(
            "You have no witness key: add your SSH public key under 'Witness key' first."
        )
    text = _normalised_signature(signature)
    try:
        sshsig.verify(
            checkpoint.body.encode(),
            text,
            sshsig.load_openssh_public_key(key.public_key),
            sshsig.namespace("witness"),
        )
    except sshsig.SshSigError as error:
        raise ValidationError(
            f"The witness signature does not verify for checkpoint {checkpoint.size} with "
            f"your key {key.fingerprint}: {error}."
        ) from None
    existing = WitnessSignature.objects.filter(signed_checkpoint=checkpoint, key=key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            cosigned = WitnessSignature.objects.create(
                notary=notary,
                key=key,
                signed_checkpoint=checkpoint,
                signature=text,
                signed_at=timezone.now(),
            )
            audit_record(
                action="checkpoint.witness",
                actor=notary,
                target=cosigned,
                details={
                    "size": checkpoint.size,
                    "root": checkpoint.root,
                    "fingerprint": key.fingerprint,
                },
            )
    except IntegrityError:
        return WitnessSignature.objects.get(signed_checkpoint=checkpoint, key=key)
    return cosigned
