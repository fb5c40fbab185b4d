#!/usr/bin/env python3
"""Check an escrow safe export without the escrow software: python3 escrow_verify.py <folder>

This one file ships inside every safe export. It needs only Python 3.10 or later (standard
library) and OpenSSH's ``ssh-keygen`` (for the SSHSIG signatures), and checks:

- every file against SHA256SUMS;
- every deposit: its manifest.json against the hash recorded for it (kit.json and
  the log leaf), its SSH signature (``ssh-keygen -Y verify``), and its inclusion
  proof (RFC 6962) against a signed checkpoint of the transparency log;
- every checkpoint in the kit (the system's latest and each one a notary co-signed
  as a witness): the system's SSH signature, the C2SP signed-note signature
  (Ed25519, checked here in pure Python), the notary's witness signature;
- the consistency proofs between all those checkpoints, ordered by size: each older
  tree is a prefix of each newer one, so the log was only ever appended to. Two
  different roots for one size, or an older tree that is not a prefix, is a fork:
  evidence that the log was rewritten.

It prints one line per check (OK or FAIL, naming what was checked) and exits 0 only
when every check passed, 1 when one failed, 2 when the folder is not a safe export.

The Merkle and note code re-implements RFC 9162 section 2.1 and the C2SP
signed-note / tlog-checkpoint formats on purpose: the kit must not depend on the
software it is meant to check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

KIT_FORMAT = "escrow-safe-export/2"
HASH_SIZE = 32
DEPOSIT_FILES = ("sealed.age", "manifest.json", "manifest.json.sig", "inclusion.json")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_SUMS_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")
DASH = "\u2014"


# --- RFC 9162 section 2.1: Merkle tree hashes and proof verification -------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if len(leaf) != HASH_SIZE or len(root) != HASH_SIZE or not 0 <= index < size:
        return False
    if any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 (equal sizes: empty proof and equal roots)."""
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if any(len(p) != HASH_SIZE for p in proof) or not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# --- Ed25519 verification (RFC 8032 section 5.1.7), for the signed-note signatures ------

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
Point = tuple[int, int, int, int]


def _add(a: Point, b: Point) -> Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    pa = (y1 - x1) * (y2 - x2) % _P
    pb = (y1 + x1) * (y2 + x2) % _P
    pc = t1 * 2 * _D * t2 % _P
    pd = z1 * 2 * z2 % _P
    e, f, g, h = pb - pa, pd - pc, pd + pc, pb + pa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(scalar: int, point: Point) -> Point:
    result: Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(a: Point, b: Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _decompress(data: bytes) -> Point | None:
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (_P + 3) // 8, _P)
        if (x * x - x2) % _P:
            x = x * _SQRT_M1 % _P
        if (x * x - x2) % _P:
            return None
        if x & 1 != sign:
            x = _P - x
    return (x, y, 1, x * y % _P)


_GY = 4 * pow(5, _P - 2, _P) % _P
_G = _decompress(_GY.to_bytes(32, "little"))


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64 or _G is None:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    return _same(_mul(s, _G), _add(r, _mul(h, a)))


# --- C2SP signed notes and checkpoints -------------------------------------------------


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Body and (name, key id, signature) lines of a signed note; ValueError if malformed."""
    if not note.endswith("\n"):
        raise ValueError("the note does not end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise ValueError("the note has no blank line before its signatures")
    body, rest = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in rest[:-1].split("\n") if rest else []:
        if not line.startswith(DASH + " "):
            raise ValueError(f"signature line {line[:30]!r} does not start with an em dash")
        parts = line[2:].split(" ")
        if len(parts) != 2:
            raise ValueError(f"signature line {line[:30]!r} is not '— name signature'")
        try:
            raw = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"signature of {parts[0]} is not base64") from None
        if len(raw) < 5:
            raise ValueError(f"signature of {parts[0]} is too short")
        signatures.append((parts[0], raw[:4], raw[4:]))
    if not signatures:
        raise ValueError("the note has no signatures")
    return body, signatures


def parse_checkpoint(body: str) -> tuple[str, int, bytes]:
    """(origin, size, root) of a tlog-checkpoint body; ValueError if malformed."""
    if not body.endswith("\n"):
        raise ValueError("the checkpoint does not end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) != 3:
        raise ValueError(f"the checkpoint has {len(lines)} lines, not 3")
    origin, size, root_text = lines
    if not origin or not _DECIMAL.fullmatch(size):
        raise ValueError("the checkpoint origin or size is malformed")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the checkpoint root is not base64") from None
    if len(root) != HASH_SIZE:
        raise ValueError("the checkpoint root is not 32 bytes")
    return origin, int(size), root


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


def ssh_ed25519_key(line: str) -> bytes:
    """The 32-byte key of the first 'ssh-ed25519 AAAA...' on an allowed_signers line."""
    fields = line.split()
    for i, field in enumerate(fields[:-1]):
        if field == "ssh-ed25519":
            blob = base64.b64decode(fields[i + 1])
            if blob[:15] == b"\x00\x00\x00\x0bssh-ed25519" and blob[15:19] == b"\x00\x00\x00\x20":
                return blob[19:51]
    raise ValueError("no ssh-ed25519 key on the line")


# --- The checks ------------------------------------------------------------------------


class Checker:
    """Runs the checks, printing one line each, and remembers whether any failed."""

    def __init__(self, kit: Path) -> None:
        self.kit = kit
        self.failures: list[str] = []
        self.checks = 0
        # size -> (root, where it came from) of every checkpoint whose signature verified
        self.checkpoints: dict[int, list[tuple[bytes, str]]] = {}

    def ok(self, what: str) -> None:
        self.checks += 1
        print(f"OK    {what}")

    def fail(self, what: str, why: str) -> None:
        self.checks += 1
        self.failures.append(what)
        print(f"FAIL  {what}: {why}")

    def check(self, condition: bool, what: str, why: str) -> bool:
        if condition:
            self.ok(what)
        else:
            self.fail(what, why)
        return condition

    def path(self, relative: str) -> Path:
        """A kit file; refuses names that would leave the kit folder."""
        if relative.startswith("/") or ".." in Path(relative).parts:
            raise ValueError(f"{relative!r} points outside the kit")
        return self.kit / relative

    def read(self, relative: str) -> bytes | None:
        try:
            return self.path(relative).read_bytes()
        except (OSError, ValueError):
            return None

    def ssh_verify(
        self, what: str, signers: str, principal: str, namespace: str, sig: str, message: bytes
    ) -> bool:
        """ssh-keygen -Y verify -f <signers> -I <principal> -n <namespace> -s <sig> < message."""
        command = ["ssh-keygen", "-Y", "verify", "-f", signers, "-I", principal, "-n", namespace]
        try:
            result = subprocess.run(
                [*command, "-s", sig],
                input=message,
                capture_output=True,
                cwd=self.kit,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as error:
            self.fail(what, f"could not run ssh-keygen: {error}")
            return False
        output = (result.stdout + result.stderr).decode("utf-8", "replace").strip()
        return self.check(result.returncode == 0, what, output.splitlines()[-1] if output else "")

    def sums(self) -> None:
        text = self.read("SHA256SUMS")
        if text is None:
            self.fail("SHA256SUMS", "missing")
            return
        for line in text.decode("utf-8", "replace").splitlines():
            match = _SUMS_LINE.fullmatch(line)
            if not match:
                self.fail("SHA256SUMS", f"unreadable line {line[:60]!r}")
                continue
            digest, name = match.groups()
            actual = self.sha256(name)
            if actual is None:
                self.fail(f"sha256 {name}", "file missing")
            else:
                self.check(actual == digest, f"sha256 {name}", f"is {actual}, listed {digest}")

    def sha256(self, relative: str) -> str | None:
        """Hex SHA-256 of a kit file, read in pieces (a sealed file can be gigabytes)."""
        digest = hashlib.sha256()
        try:
            with self.path(relative).open("rb") as source:
                while chunk := source.read(1024 * 1024):
                    digest.update(chunk)
        except (OSError, ValueError):
            return None
        return digest.hexdigest()

    def checkpoint(
        self,
        what: str,
        folder: str,
        kit: dict[str, Any],
        system_key: bytes,
        witness: dict[str, Any] | None = None,
    ) -> None:
        """One checkpoint: body, signed note and SSH signature(s); remembered if all hold."""
        body_bytes = self.read(f"{folder}/checkpoint")
        note_bytes = self.read(f"{folder}/checkpoint.note")
        if body_bytes is None or note_bytes is None:
            self.fail(what, f"{folder}/checkpoint or checkpoint.note is missing")
            return
        body = body_bytes.decode("utf-8", "replace")
        try:
            origin, size, root = parse_checkpoint(body)
            note_body, signatures = split_note(note_bytes.decode("utf-8", "replace"))
        except ValueError as error:
            self.fail(what, str(error))
            return
        good = self.check(origin == kit["origin"], f"{what}: origin", f"{origin!r} is not ours")
        good &= self.check(note_body == body, f"{what}: note body", "differs from checkpoint")
        wanted = key_id(origin, system_key)
        signed = [s for n, i, s in signatures if n == origin and i == wanted]
        good &= self.check(
            bool(signed) and all(ed25519_verify(system_key, body_bytes, s) for s in signed),
            f"{what}: signed note (Ed25519, system key)",
            "no valid signature by the system key",
        )
        good &= self.ssh_verify(
            f"{what}: ssh-keygen -Y verify (system key)",
            "allowed_signers",
            kit["principal"],
            kit["namespaces"]["checkpoint"],
            f"{folder}/checkpoint.sig",
            body_bytes,
        )
        if witness is not None:
            good &= self.ssh_verify(
                f"{what}: ssh-keygen -Y verify (witness {witness['principal']})",
                "witnesses_allowed_signers",
                witness["principal"],
                kit["namespaces"]["witness"],
                f"{folder}/witness.sig",
                body_bytes,
            )
        if good:
            self.checkpoints.setdefault(size, []).append((root, what))

    def deposit(self, entry: dict[str, Any], kit: dict[str, Any], allowed: bytes) -> None:
        folder = entry["folder"]
        missing = [name for name in DEPOSIT_FILES if not self.path(f"{folder}/{name}").is_file()]
        self.check(not missing, f"deposit {folder} is complete", f"missing {', '.join(missing)}")
        sealed = self.sha256(f"{folder}/sealed.age")
        if sealed is not None:
            self.check(
                sealed == entry["ciphertext_sha256"],
                f"{folder}/sealed.age matches its recorded hash",
                f"SHA-256 is {sealed}, recorded {entry['ciphertext_sha256']}",
            )
        manifest = self.read(f"{folder}/manifest.json")
        if manifest is None:
            return
        digest = hashlib.sha256(manifest).hexdigest()
        self.check(
            digest == entry["manifest_sha256"],
            f"{folder}/manifest.json matches its recorded hash",
            f"SHA-256 is {digest}, recorded {entry['manifest_sha256']}",
        )
        self.check(
            self.read(f"{folder}/allowed_signers") in (None, allowed),
            f"{folder}/allowed_signers is the kit's",
            "differs from the kit's allowed_signers",
        )
        if "manifest.json.sig" not in missing:
            self.ssh_verify(
                f"{folder}/manifest.json: ssh-keygen -Y verify (system key)",
                "allowed_signers",
                kit["principal"],
                kit["namespaces"]["manifest"],
                f"{folder}/manifest.json.sig",
                manifest,
            )
        if "inclusion.json" in missing:
            return  # reported above: a deposit sealed before the log existed has none
        what = f"{folder}: inclusion proof"
        try:
            proof = json.loads(self.read(f"{folder}/inclusion.json") or b"")
            hashes = [bytes.fromhex(h) for h in proof["proof"]]
            index, size = int(proof["index"]), int(proof["tree_size"])
            note = str(proof["checkpoint"])
            body, _ = split_note(note)
            _, note_size, root = parse_checkpoint(body)
        except (ValueError, KeyError, TypeError) as error:
            self.fail(what, f"inclusion.json is unreadable: {error}")
            return
        leaf = leaf_hash(bytes.fromhex(digest))
        self.check(
            proof.get("leaf_hash") == leaf.hex(),
            f"{folder}: log leaf is this manifest",
            "the log leaf is another manifest's hash",
        )
        known = [r for r, _ in self.checkpoints.get(note_size, [])]
        self.check(
            note_size == size and root in known and proof.get("root") == root.hex(),
            f"{folder}: proof is against a verified checkpoint (size {size})",
            "its checkpoint is not one of the kit's verified checkpoints",
        )
        self.check(
            verify_inclusion(leaf, index, size, hashes, root),
            f"{what} (leaf {index} of {size})",
            "does not lead to the checkpoint's root",
        )

    def consistency(self) -> None:
        sizes = sorted(self.checkpoints)
        for size in sizes:
            roots = {root for root, _ in self.checkpoints[size]}
            self.check(
                len(roots) == 1,
                f"one root at size {size}",
                "FORK: "
                + "; ".join(f"{where} has {r.hex()}" for r, where in self.checkpoints[size]),
            )
        for old, new in pairwise(sizes):
            what = f"consistency {old} -> {new}"
            data = self.read(f"log/consistency/{old}-{new}.json")
            if data is None:
                self.fail(what, f"log/consistency/{old}-{new}.json is missing")
                continue
            try:
                proof = [bytes.fromhex(h) for h in json.loads(data)["proof"]]
            except (ValueError, KeyError, TypeError) as error:
                self.fail(what, f"unreadable proof: {error}")
                continue
            old_root, new_root = self.checkpoints[old][0][0], self.checkpoints[new][0][0]
            self.check(
                verify_consistency(old, new, old_root, new_root, proof),
                what,
                f"FORK: the tree of size {old} is not a prefix of the tree of size {new}",
            )

    def run(self) -> int:
        raw = self.read("kit.json")
        allowed = self.read("allowed_signers")
        if raw is None or allowed is None:
            print(f"FAIL  {self.kit} is not a safe export (kit.json or allowed_signers missing)")
            return 2
        try:
            kit = json.loads(raw)
            if kit.get("format") != KIT_FORMAT:
                raise ValueError(f"format {kit.get('format')!r}, expected {KIT_FORMAT}")
            system_key = ssh_ed25519_key(allowed.decode())
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            print(f"FAIL  kit.json or allowed_signers is unreadable: {error}")
            return 2
        self.sums()
        if kit.get("checkpoint") is None:
            print("NOTE  the deposit log was empty when this kit was made: no checkpoint.")
        else:
            self.checkpoint("latest checkpoint", "log", kit, system_key)
        for witness in kit.get("witnessed", []):
            self.checkpoint(
                f"checkpoint {witness['size']} co-signed by {witness['principal']}",
                witness["folder"],
                kit,
                system_key,
                witness,
            )
        listed = set()
        for entry in kit.get("deposits", []):
            listed.add(entry["folder"])
            self.deposit(entry, kit, allowed)
        found = {
            path.parent.relative_to(self.kit).as_posix()
            for name in ("sealed.age", "manifest.json.sig", "inclusion.json")
            for path in self.kit.rglob(name)
        }
        for folder in sorted(found - listed):
            self.fail(f"deposit {folder}", "is in the folder but not listed in kit.json")
        self.consistency()
        if not kit.get("witnessed"):
            print("NOTE  no notary co-signed checkpoints in this kit: compare the latest")
            print("      checkpoint with the ones you co-signed and kept yourself.")
        passed = self.checks - len(self.failures)
        print(f"{passed} of {self.checks} checks passed.")
        if self.failures:
            print("FAILED: " + "; ".join(self.failures))
            return 1
        return 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    kit = Path(argv[1]).resolve()
    if not kit.is_dir():
        print(f"FAIL  {argv[1]} is not a folder")
        return 2
    try:
        return Checker(kit).run()
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        print(f"FAIL  kit.json is malformed: {type(error).__name__} {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
