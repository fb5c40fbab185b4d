"""SSHSIG signatures, checked both ways against the real OpenSSH ``ssh-keygen``."""

from __future__ import annotations

import base64
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vault import sshsig
from vault.sshsig import SshSigError

MESSAGE = b"the manifest bytes\n\x00\xff and more"


@pytest.fixture(scope="module")
def ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        pytest.fail("`ssh-keygen` is required (install the Debian package openssh-client)")
    return path


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def keygen(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["ssh-keygen", *map(str, args)], input=stdin, capture_output=True, timeout=60, check=False
    )


def write_allowed_signers(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(sshsig.allowed_signers_line(key.public_key()) + "\n")
    return path


def openssh_verify(
    tmp_path: Path, key: Ed25519PrivateKey, message: bytes, signature: str, namespace: str
) -> subprocess.CompletedProcess[bytes]:
    allowed = write_allowed_signers(tmp_path, key)
    sig = tmp_path / "file.sig"
    sig.write_text(signature)
    return keygen(
        "-Y", "verify", "-f", allowed, "-I", "escrow", "-n", namespace, "-s", sig, stdin=message
    )


def openssh_sign(tmp_path: Path, message: bytes, namespace: str, *extra: str) -> tuple[str, str]:
    """A key made by ``ssh-keygen -t ed25519`` (its public line) and its ``ssh-keygen
    -Y sign`` signature."""
    key_file = tmp_path / "id_ed25519"
    if not key_file.exists():
        made = keygen("-q", "-t", "ed25519", "-N", "", "-C", "someone", "-f", key_file)
        assert made.returncode == 0, made.stderr
    data = tmp_path / "data"
    data.write_bytes(message)
    signed = keygen("-Y", "sign", "-f", key_file, "-n", namespace, *extra, data)
    assert signed.returncode == 0, signed.stderr
    signature = (tmp_path / "data.sig").read_text()
    (tmp_path / "data.sig").unlink()
    return (tmp_path / "id_ed25519.pub").read_text(), signature


def test_namespace_names_the_kind_and_the_domain(settings: Any) -> None:
    settings.ESCROW_SIGNATURE_DOMAIN = "escrow.example.org"
    assert sshsig.namespace("manifest") == "escrow-manifest@escrow.example.org"
    assert sshsig.namespace("witness") == "escrow-witness@escrow.example.org"
    with pytest.raises(ValueError, match="unknown signature kind 'invoice'"):
        sshsig.namespace("invoice")
    for bad in ("", "escrow.example.org,x", 'a"b', "two words", "-bad.example.org", "a..b"):
        settings.ESCROW_SIGNATURE_DOMAIN = bad
        with pytest.raises(ValueError, match="is not a domain name"):
            sshsig.namespace("manifest")


def test_allowed_signers_line_lists_the_system_namespaces(key: Ed25519PrivateKey) -> None:
    line = sshsig.allowed_signers_line(key.public_key())
    assert "\n" not in line
    principal, options, key_type, blob = line.split(" ")
    assert principal == "escrow"
    expected = [sshsig.namespace(k) for k in sshsig.KINDS if k != "witness"]
    assert options == f'namespaces="{",".join(expected)}"'
    assert f"{key_type} {blob}" == sshsig.openssh_public_key(key)
    assert sshsig.allowed_signers_line(key, principal="other").startswith("other namespaces=")
    with pytest.raises(ValueError, match="unusable principal"):
        sshsig.allowed_signers_line(key, principal="two words")


def test_openssh_public_key_round_trip(key: Ed25519PrivateKey) -> None:
    line = sshsig.openssh_public_key(key)
    assert line.startswith("ssh-ed25519 AAAA")
    assert sshsig.openssh_public_key(key.public_key()) == line
    loaded = sshsig.load_openssh_public_key(line + " a comment\n")
    assert sshsig.openssh_public_key(loaded) == line


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "one OpenSSH public key line"),
        ("ssh-ed25519 AAAA\nssh-ed25519 AAAA", "one OpenSSH public key line"),
        ("ed25519:AAAA", "not an ssh-ed25519 public key"),
        ("ssh-ed25519 !!!notbase64", "unreadable OpenSSH public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG2+", "unreadable OpenSSH public key"),
    ],
)
def test_load_openssh_public_key_refuses(text: str, reason: str) -> None:
    with pytest.raises(SshSigError, match=reason):
        sshsig.load_openssh_public_key(text)


def test_load_openssh_public_key_refuses_other_key_types() -> None:
    ecdsa = generate_private_key(SECP256R1()).public_key()
    line = ecdsa.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    with pytest.raises(SshSigError, match="not an ssh-ed25519 public key"):
        sshsig.load_openssh_public_key(line)
    # A key blob that says ed25519 in the text but holds another type inside.
    blob = line.split(" ")[1]
    with pytest.raises(SshSigError):
        sshsig.load_openssh_public_key(f"ssh-ed25519 {blob}")


def test_sign_is_byte_identical_to_ssh_keygen(
    ssh_keygen: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    data = tmp_path / "data"
    data.write_bytes(MESSAGE)
    namespace = sshsig.namespace("manifest")
    result = keygen("-Y", "sign", "-f", key_file, "-n", namespace, data)
    assert result.returncode == 0, result.stderr
    ours = sshsig.sign(MESSAGE, key, namespace)
    assert ours == (tmp_path / "data.sig").read_text()
    assert ours.startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert ours.endswith("-----END SSH SIGNATURE-----\n")
    assert all(len(line) <= 70 for line in ours.splitlines())


def test_our_signature_verifies_with_ssh_keygen(
    ssh_keygen: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    namespace = sshsig.namespace("certificate")
    signature = sshsig.sign(MESSAGE, key, namespace)
    result = openssh_verify(tmp_path, key, MESSAGE, signature, namespace)
    assert result.returncode == 0, result.stderr
    assert b"Good" in result.stdout
    sshsig.verify(MESSAGE, signature, key.public_key(), namespace)

    sig = tmp_path / "file.sig"
    checked = keygen("-Y", "check-novalidate", "-n", namespace, "-s", sig, stdin=MESSAGE)
    assert checked.returncode == 0, checked.stderr


def test_ssh_keygen_refuses_our_signature_when_tampered(
    ssh_keygen: str, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    namespace = sshsig.namespace("manifest")
    signature = sshsig.sign(MESSAGE, key, namespace)
    assert openssh_verify(tmp_path, key, MESSAGE + b"x", signature, namespace).returncode != 0
    other_namespace = sshsig.namespace("receipt")
    assert openssh_verify(tmp_path, key, MESSAGE, signature, other_namespace).returncode != 0
    other_key = Ed25519PrivateKey.generate()
    assert openssh_verify(tmp_path, other_key, MESSAGE, signature, namespace).returncode != 0
    sig = tmp_path / "file.sig"
    checked = keygen("-Y", "check-novalidate", "-n", namespace, "-s", sig, stdin=MESSAGE + b"x")
    assert checked.returncode != 0
    # "witness" is the notaries' namespace, not in the system's allowed_signers line.
    witness = sshsig.namespace("witness")
    signed_as_witness = sshsig.sign(MESSAGE, key, witness)
    assert openssh_verify(tmp_path, key, MESSAGE, signed_as_witness, witness).returncode != 0


@pytest.mark.parametrize("hash_algorithm", ["sha512", "sha256"])
def test_ssh_keygen_signature_verifies_with_ours(
    ssh_keygen: str, tmp_path: Path, hash_algorithm: str
) -> None:
    namespace = sshsig.namespace("witness")
    public_line, signature = openssh_sign(
        tmp_path, MESSAGE, namespace, "-O", f"hashalg={hash_algorithm}"
    )
    public = sshsig.load_openssh_public_key(public_line)
    sshsig.verify(MESSAGE, signature, public, namespace)

    with pytest.raises(SshSigError, match="does not match the message"):
        sshsig.verify(MESSAGE + b"x", signature, public, namespace)
    with pytest.raises(SshSigError, match="is for namespace 'escrow-witness@"):
        sshsig.verify(MESSAGE, signature, public, sshsig.namespace("manifest"))
    with pytest.raises(SshSigError, match="made by another key"):
        sshsig.verify(MESSAGE, signature, Ed25519PrivateKey.generate().public_key(), namespace)


def blob_of(signature: str) -> bytes:
    return base64.b64decode("".join(signature.strip().splitlines()[1:-1]))


def armor(blob: bytes) -> str:
    encoded = base64.b64encode(blob).decode()
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return "\n".join([sshsig.BEGIN, *lines, sshsig.END]) + "\n"


def string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def build(
    key: Ed25519PrivateKey,
    *,
    magic: bytes = b"SSHSIG",
    version: int = 1,
    key_type: bytes = b"ssh-ed25519",
    namespace: str,
    reserved: bytes = b"",
    hash_algorithm: bytes = b"sha512",
    signature_type: bytes = b"ssh-ed25519",
    raw_signature: bytes | None = None,
) -> bytes:
    """A signature blob with one field made wrong; the Ed25519 signature itself is the
    real one, so only the field under test can be what is refused."""
    real = blob_of(sshsig.sign(MESSAGE, key, namespace))
    raw = raw_signature if raw_signature is not None else real[-64:]
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return (
        magic
        + struct.pack(">I", version)
        + string(string(key_type) + string(public))
        + string(namespace.encode())
        + string(reserved)
        + string(hash_algorithm)
        + string(string(signature_type) + string(raw))
    )


def test_build_helper_reproduces_a_real_signature(key: Ed25519PrivateKey) -> None:
    namespace = sshsig.namespace("manifest")
    assert armor(build(key, namespace=namespace)) == sshsig.sign(MESSAGE, key, namespace)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"magic": b"SSHSIH"}, "does not start with SSHSIG"),
        ({"version": 2}, "unsupported SSHSIG version 2"),
        ({"key_type": b"ssh-rsa"}, "unsupported key type 'ssh-rsa'"),
        ({"key_type": b"sk-ssh-ed25519@openssh.com"}, "unsupported key type"),
        ({"reserved": b"x"}, "reserved field"),
        ({"hash_algorithm": b"md5"}, "unsupported hash algorithm 'md5'"),
        ({"signature_type": b"ssh-rsa"}, "unsupported signature type 'ssh-rsa'"),
        ({"raw_signature": b"\x00" * 63}, "malformed ssh-ed25519 signature"),
        ({"raw_signature": b"\x00" * 64}, "does not match the message"),
    ],
)
def test_verify_refuses_hostile_fields(
    key: Ed25519PrivateKey, fields: dict[str, Any], reason: str
) -> None:
    namespace = sshsig.namespace("manifest")
    signature = armor(build(key, namespace=namespace, **fields))
    with pytest.raises(SshSigError, match=reason):
        sshsig.verify(MESSAGE, signature, key.public_key(), namespace)


def test_verify_refuses_truncated_and_trailing_bytes(key: Ed25519PrivateKey) -> None:
    namespace = sshsig.namespace("manifest")
    blob = build(key, namespace=namespace)
    for cut in (3, 10, 40, len(blob) - 1):
        with pytest.raises(SshSigError, match="truncated"):
            sshsig.verify(MESSAGE, armor(blob[:cut]), key.public_key(), namespace)
    with pytest.raises(SshSigError, match="trailing bytes"):
        sshsig.verify(MESSAGE, armor(blob + b"\x00"), key.public_key(), namespace)


def test_verify_refuses_bad_armor(key: Ed25519PrivateKey) -> None:
    namespace = sshsig.namespace("manifest")
    good = sshsig.sign(MESSAGE, key, namespace)
    lines = good.splitlines()
    cases = {
        "": "expected -----BEGIN SSH SIGNATURE-----",
        "\n".join(lines[1:]): "expected -----BEGIN SSH SIGNATURE-----",
        "\n".join(lines[:-1]): "expected -----END SSH SIGNATURE-----",
        good.replace("-----BEGIN SSH SIGNATURE-----", "-----BEGIN PGP SIGNATURE-----"): (
            "expected -----BEGIN SSH SIGNATURE-----"
        ),
        "\n".join([lines[0], lines[1][:-1] + "*", *lines[2:]]): "not valid base64",
        "\n".join([lines[0], lines[1] + "é", *lines[2:]]): "not valid base64",
        good + "A" * 5000: "too long",
    }
    for text, reason in cases.items():
        with pytest.raises(SshSigError, match=reason):
            sshsig.verify(MESSAGE, text, key.public_key(), namespace)
    with pytest.raises(SshSigError, match="must be text"):
        sshsig.verify(MESSAGE, good.encode(), key.public_key(), namespace)  # type: ignore[arg-type]
    # Surrounding whitespace and CRLF line ends, as a mail client may leave them, are fine.
    sshsig.verify(MESSAGE, "\n  " + good.replace("\n", "\r\n"), key.public_key(), namespace)


def test_unusable_namespaces_are_refused(key: Ed25519PrivateKey) -> None:
    for bad in ("", "a,b", 'a"b', "a b"):
        with pytest.raises(SshSigError, match="unusable namespace"):
            sshsig.sign(MESSAGE, key, bad)
        with pytest.raises(SshSigError, match="unusable namespace"):
            sshsig.verify(MESSAGE, "x", key.public_key(), bad)


def test_sign_digest_signs_a_message_hashed_as_a_stream(key: Ed25519PrivateKey) -> None:
    namespace = sshsig.namespace("manifest")
    digest = hashlib.sha512()
    for chunk in (MESSAGE[:5], MESSAGE[5:]):
        digest.update(chunk)
    signature = sshsig.sign_digest(digest.digest(), key, namespace)
    assert signature == sshsig.sign(MESSAGE, key, namespace)
    sshsig.verify(MESSAGE, signature, key.public_key(), namespace)
    with pytest.raises(SshSigError, match="SHA-512 digest is 64 bytes"):
        sshsig.sign_digest(hashlib.sha256(MESSAGE).digest(), key, namespace)
