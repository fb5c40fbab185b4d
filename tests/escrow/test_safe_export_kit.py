"""The safe export as a proof kit: its README's commands, run literally where this system
is not installed, all pass; a rewritten manifest, a removed deposit, a forked log or a
changed proof makes the bundled verifier fail, naming what.

"Not installed": the kit is unzipped into a fresh folder and every command runs there
through ``sh`` with ``PATH`` holding only links to age, sha256sum, ssh-keygen, python3
(the system's /usr/bin/python3, not the project's virtualenv) and sh, and no other
environment variable."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from escrow.services.deposits import deposit_acknowledge
from escrow.services.safe_export import VERIFIER, safe_export_chunks
from tests import archives
from tests.deposits import deposit_through_pipeline
from tests.transparency.witnessing import cosign_form
from transparency.models import LogLeaf
from vault import merkle, signed_note, sshsig
from vault.keys import system_signing_key

TOOLS = ("age", "sha256sum", "ssh-keygen", "sh")
SYSTEM_PYTHON = Path("/usr/bin/python3")
missing = [tool for tool in TOOLS if shutil.which(tool) is None]
if missing or not SYSTEM_PYTHON.exists():  # pragma: no cover - the Debian packages are the set-up
    pytest.skip(f"needs {missing or 'python3'} from Debian", allow_module_level=True)


def load_verifier() -> ModuleType:
    """The shipped verifier as a module, to compare its code with vault's."""
    spec = importlib.util.spec_from_file_location("escrow_verify", VERIFIER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def clean_bin(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None
        (folder / tool).symlink_to(found)
    (folder / "python3").symlink_to(SYSTEM_PYTHON)
    return folder


def run(command: str, kit: Path, clean_bin: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(clean_bin / "sh"), "-c", command],
        cwd=kit,
        env={"PATH": str(clean_bin)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def verify(kit: Path, clean_bin: Path) -> subprocess.CompletedProcess[str]:
    return run("python3 escrow_verify.py .", kit, clean_bin)


@pytest.fixture
def exported(tmp_path, product, staff, notary, notary_identity) -> Path:
    """A kit of three acknowledged deposits, each co-signed by the notary as a witness
    (checkpoints 1, 2 and 3), and a fourth sealed but not acknowledged (latest: 4)."""
    keys = tmp_path / "witness-keys"
    keys.mkdir()
    zip_body = archives.zip_bytes()
    for version, body in (("1.0.0", None), ("1.1.0", zip_body), ("2.0.0", None)):
        deposit = deposit_through_pipeline(product=product, staff=staff, version=version, body=body)
        form = cosign_form(notary, keys)
        deposit_acknowledge(
            deposit=deposit,
            notary=notary,
            witness_signature=form["witness_signature"],
            checkpoint_size=int(form["checkpoint_size"]),
        )
    deposit_through_pipeline(product=product, staff=staff, version="3.0.0-rc1")
    kit = tmp_path / "kit"
    with zipfile.ZipFile(io.BytesIO(b"".join(safe_export_chunks(actor=notary)))) as archive:
        archive.extractall(kit)
    (kit / "notary-identity.txt").write_text(notary_identity.to_string() + "\n")
    return kit


def readme_commands(kit: Path) -> list[str]:
    lines = (kit / "README.txt").read_text().splitlines()
    return [line.split("$ ", 1)[1] for line in lines if line.startswith("  $ ")]


@pytest.mark.django_db
def test_every_readme_command_passes_in_a_clean_environment(exported: Path, clean_bin) -> None:
    commands = readme_commands(exported)
    manifest_commands = [c for c in commands if "-n escrow-manifest@" in c]
    assert len(manifest_commands) == 3
    assert all(
        c.endswith(
            "ssh-keygen -Y verify -f allowed_signers -I escrow -n "
            f"{sshsig.namespace('manifest')} -s manifest.json.sig < manifest.json)"
        )
        for c in manifest_commands
    )
    assert sum(c.startswith("age -d -i notary-identity.txt") for c in commands) == 3
    assert sum("-n escrow-witness@" in c for c in commands) == 3
    assert "sha256sum -c SHA256SUMS" in commands
    assert "python3 escrow_verify.py ." in commands
    for command in commands:
        result = run(command, exported, clean_bin)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    # The age commands really wrote the archives (the echo | sha256sum lines compared them).
    opened = sorted(p.name for p in exported.glob("ledger-pro-*"))
    assert opened == ["ledger-pro-1.0.0.tar.gz", "ledger-pro-1.1.0.zip", "ledger-pro-2.0.0.tar.gz"]

    report = verify(exported, clean_bin).stdout
    for expected in (
        "OK    latest checkpoint: signed note (Ed25519, system key)",
        "OK    latest checkpoint: ssh-keygen -Y verify (system key)",
        "OK    checkpoint 2 co-signed by notary-",
        "OK    ledger-pro/1.0.0/manifest.json matches its recorded hash",
        "OK    ledger-pro/2.0.0: inclusion proof (leaf 2 of 4)",
        "OK    consistency 1 -> 2",
        "OK    consistency 2 -> 3",
        "OK    consistency 3 -> 4",
    ):
        assert expected in report, report
    assert "FAIL" not in report


@pytest.mark.django_db
def test_the_project_is_not_importable_from_the_clean_environment(exported, clean_bin) -> None:
    """The verifier passes without the project: the same python3 cannot import it."""
    result = run("python3 -c 'import vault'", exported, clean_bin)
    assert result.returncode != 0 and "No module named 'vault'" in result.stderr


def resum(kit: Path) -> None:
    """Rewrite SHA256SUMS over the kit as it is now, as someone covering tracks would."""
    listed = [
        line.split("  ", 1)[1]
        for line in (kit / "SHA256SUMS").read_text().splitlines()
        if line.strip()
    ]
    lines = [
        f"{hashlib.sha256((kit / name).read_bytes()).hexdigest()}  {name}"
        for name in listed
        if (kit / name).exists()
    ]
    (kit / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def rewrite_manifest(kit: Path) -> None:
    path = kit / "ledger-pro/1.1.0/manifest.json"
    path.write_bytes(path.read_bytes().replace(b'"version":"1.1.0"', b'"version":"1.1.1"'))


def remove_deposit_folder(kit: Path) -> None:
    shutil.rmtree(kit / "ledger-pro/1.0.0")


def remove_deposit_from_index(kit: Path) -> None:
    def drop(data: dict) -> None:
        data["deposits"] = [d for d in data["deposits"] if d["folder"] != "ledger-pro/1.1.0"]

    edit_json(kit / "kit.json", drop)


def remove_inclusion_proof(kit: Path) -> None:
    (kit / "ledger-pro/1.1.0/inclusion.json").unlink()


def change_inclusion_proof(kit: Path) -> None:
    def flip(data: dict) -> None:
        first = data["proof"][0]
        data["proof"][0] = ("0" if first[0] != "0" else "1") + first[1:]

    edit_json(kit / "ledger-pro/2.0.0/inclusion.json", flip)


def change_consistency_proof(kit: Path) -> None:
    def flip(data: dict) -> None:
        data["proof"][-1] = "f" * 64

    edit_json(kit / "log/consistency/2-3.json", flip)


def fork_the_log(kit: Path) -> None:
    """The operator, holding the system key, rebuilds the log without deposit 1.0.0 and
    re-signs everything: a new latest checkpoint (size 4 again, with a filler leaf),
    new inclusion proofs, a new consistency proof, a kit that never mentions 1.0.0.
    Only the notary's co-signed checkpoints are beyond its reach."""
    _fork(kit, filler=True)


def fork_at_a_witnessed_size(kit: Path) -> None:
    """The same without the filler: the forked latest checkpoint has size 3, the size
    of a checkpoint the notary co-signed, with another root."""
    _fork(kit, filler=False)


def _fork(kit: Path, *, filler: bool) -> None:
    key = system_signing_key()
    leaves = list(LogLeaf.objects.order_by("index"))
    kept = [bytes.fromhex(leaf.leaf_hash) for leaf in leaves if leaf.index != 0]
    forked = kept + ([merkle.leaf_hash(hashlib.sha256(b"filler").digest())] if filler else [])
    origin = signed_note.log_origin()
    body = signed_note.checkpoint_body(origin, len(forked), merkle.root(forked))
    note = signed_note.sign_note(body, origin, key)
    signature = sshsig.sign(body.encode(), key, sshsig.namespace("checkpoint"))
    (kit / "log/checkpoint").write_text(body)
    (kit / "log/checkpoint.note").write_text(note)
    (kit / "log/checkpoint.sig").write_text(signature)
    shutil.rmtree(kit / "ledger-pro/1.0.0")

    def rewrite_index(data: dict) -> None:
        data["deposits"] = [d for d in data["deposits"] if d["folder"] != "ledger-pro/1.0.0"]
        data["checkpoint"]["root"] = merkle.root(forked).hex()

    edit_json(kit / "kit.json", rewrite_index)
    for version in ("1.1.0", "2.0.0"):
        path = kit / f"ledger-pro/{version}/inclusion.json"

        def reprove(data: dict) -> None:
            index = kept.index(bytes.fromhex(data["leaf_hash"]))
            data.update(
                index=index,
                tree_size=len(forked),
                proof=[h.hex() for h in merkle.inclusion_proof(index, forked)],
                root=merkle.root(forked).hex(),
                checkpoint=note,
                checkpoint_sshsig=signature,
            )

        edit_json(path, reprove)
    if filler:
        proof = [h.hex() for h in merkle.consistency_proof(3, forked)]
        (kit / "log/consistency/3-4.json").write_text(json.dumps({"proof": proof}))
    else:
        (kit / "log/consistency/3-4.json").unlink()


TAMPERING: list[tuple[Callable[[Path], None], list[str]]] = [
    (
        rewrite_manifest,
        [
            "FAIL  ledger-pro/1.1.0/manifest.json matches its recorded hash",
            "FAIL  ledger-pro/1.1.0/manifest.json: ssh-keygen -Y verify (system key)",
            "FAIL  ledger-pro/1.1.0: log leaf is this manifest",
        ],
    ),
    (
        remove_deposit_folder,
        ["FAIL  deposit ledger-pro/1.0.0 is complete: missing sealed.age, manifest.json"],
    ),
    (
        remove_deposit_from_index,
        ["FAIL  deposit ledger-pro/1.1.0: is in the folder but not listed in kit.json"],
    ),
    (
        remove_inclusion_proof,
        [
            "FAIL  deposit ledger-pro/1.1.0 is complete: missing inclusion.json",
            "OK    ledger-pro/1.1.0/manifest.json: ssh-keygen -Y verify (system key)",
        ],
    ),
    (change_inclusion_proof, ["FAIL  ledger-pro/2.0.0: inclusion proof (leaf 2 of 4)"]),
    (change_consistency_proof, ["FAIL  consistency 2 -> 3: FORK"]),
    (fork_the_log, ["FAIL  consistency 3 -> 4: FORK"]),
    (fork_at_a_witnessed_size, ["FAIL  one root at size 3: FORK"]),
]


@pytest.mark.django_db
def test_tampering_is_caught_and_named(exported: Path, clean_bin, tmp_path: Path) -> None:
    assert verify(exported, clean_bin).returncode == 0
    for tamper, expected in TAMPERING:
        copy = tmp_path / f"tampered-{tamper.__name__}"
        shutil.copytree(exported, copy)
        tamper(copy)
        resum(copy)  # the sums alone would catch most of this; the verifier must not need them
        result = verify(copy, clean_bin)
        assert result.returncode == 1, (tamper.__name__, result.stdout)
        for line in expected:
            assert line in result.stdout, (tamper.__name__, result.stdout)
        assert "FAILED: " in result.stdout.splitlines()[-1]


@pytest.mark.django_db
def test_tampering_caught_by_the_sums_is_named_too(exported: Path, clean_bin) -> None:
    sealed = exported / "ledger-pro/2.0.0/sealed.age"
    sealed.write_bytes(sealed.read_bytes()[:-1] + bytes([sealed.read_bytes()[-1] ^ 1]))
    result = verify(exported, clean_bin)
    assert result.returncode == 1
    assert "FAIL  sha256 ledger-pro/2.0.0/sealed.age: is " in result.stdout
    assert "FAIL  ledger-pro/2.0.0/sealed.age matches its recorded hash" in result.stdout
    assert run("sha256sum -c SHA256SUMS", exported, clean_bin).returncode == 1


@pytest.mark.django_db
def test_a_witness_signature_by_another_key_fails(exported: Path, clean_bin) -> None:
    """A forged co-signature (the operator's own key, not the notary's) is refused."""
    forger = Ed25519PrivateKey.generate()
    folder = next((exported / "log/witnessed").iterdir())
    body = (folder / "checkpoint").read_bytes()
    (folder / "witness.sig").write_text(sshsig.sign(body, forger, sshsig.namespace("witness")))
    resum(exported)
    result = verify(exported, clean_bin)
    assert result.returncode == 1
    assert re.search(r"FAIL  checkpoint \d+ co-signed by notary-\d+: ssh-keygen", result.stdout)


@pytest.mark.django_db
def test_a_missing_or_unreadable_kit_index_is_not_a_safe_export(exported: Path, clean_bin) -> None:
    (exported / "kit.json").write_text("{")
    result = verify(exported, clean_bin)
    assert result.returncode == 2
    assert "FAIL  kit.json or allowed_signers is unreadable" in result.stdout
    (exported / "kit.json").write_text('{"format": "escrow-safe-export/2", "deposits": 7}')
    result = verify(exported, clean_bin)
    assert result.returncode == 2
    assert "FAIL  kit.json is malformed" in result.stdout
    (exported / "kit.json").unlink()
    result = verify(exported, clean_bin)
    assert result.returncode == 2
    assert "is not a safe export (kit.json or allowed_signers missing)" in result.stdout


def test_the_verifiers_merkle_code_agrees_with_vault() -> None:
    verifier = load_verifier()
    hashes = [merkle.leaf_hash(bytes([n])) for n in range(70)]
    for size in range(1, 70):
        tree = hashes[:size]
        root = merkle.root(tree)
        for index in {0, size // 3, size - 1}:
            proof = merkle.inclusion_proof(index, tree)
            assert verifier.verify_inclusion(hashes[index], index, size, proof, root)
            assert not verifier.verify_inclusion(hashes[index], index, size * 2, proof, root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(old, tree)
            old_root = merkle.root(hashes[:old])
            assert verifier.verify_consistency(old, size, old_root, root, proof)
            if proof:
                assert not verifier.verify_consistency(old, size, root, old_root, proof)


def test_the_verifiers_ed25519_agrees_with_cryptography() -> None:
    verifier = load_verifier()
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    for size in (0, 1, 33, 200):
        message = os.urandom(size)
        signature = key.sign(message)
        assert verifier.ed25519_verify(public, message, signature)
        assert not verifier.ed25519_verify(public, message + b"!", signature)
        # One bit flipped (setting a byte to zero changes nothing when it was zero).
        for position in (0, 31, 32, 63):
            tampered = bytearray(signature)
            tampered[position] ^= 0x01
            assert not verifier.ed25519_verify(public, message, bytes(tampered)), position
        other = bytearray(public)
        other[0] ^= 0x01
        assert not verifier.ed25519_verify(bytes(other), message, signature)
    # RFC 8032 section 7.1, TEST 1: the empty message.
    rfc_public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    rfc_signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verifier.ed25519_verify(rfc_public, b"", rfc_signature)
    # s >= L is refused (signature malleability).
    s = int.from_bytes(rfc_signature[32:], "little") + verifier._L
    assert not verifier.ed25519_verify(
        rfc_public, b"", rfc_signature[:32] + s.to_bytes(32, "little")
    )


def test_the_verifiers_note_parsing_reads_vaults_notes() -> None:
    verifier = load_verifier()
    key = Ed25519PrivateKey.generate()
    body = signed_note.checkpoint_body("escrow.example/deposits", 9, bytes(32))
    note = signed_note.sign_note(body, "escrow.example/deposits", key)
    parsed_body, signatures = verifier.split_note(note)
    assert parsed_body == body
    assert verifier.parse_checkpoint(body) == ("escrow.example/deposits", 9, bytes(32))
    name, key_id, signature = signatures[0]
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert key_id == signed_note.key_id(name, key.public_key()) == verifier.key_id(name, public)
    assert verifier.ed25519_verify(public, body.encode(), signature)
    line = sshsig.allowed_signers_line(key.public_key())
    assert verifier.ssh_ed25519_key(line) == public
