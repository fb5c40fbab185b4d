"""The hybrid post-quantum age recipient type (``mlkem768x25519``, ML-KEM-768 + X25519).

The CCTV vectors (test_age_conformance.py) pin decryption; here: the spec's
example key pair, generation and encodings, encryption round trips, the spec's
rule against mixing hybrid with X25519 recipients, hostile keys and stanzas,
``vault keygen --pq``, and what Debian's ``age`` 1.1.1 (which predates the type)
does with our hybrid keys and files.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from vault import cli
from vault.age import (
    KIND_HYBRID,
    KIND_X25519,
    HeaderError,
    HybridIdentity,
    HybridRecipient,
    Identity,
    KeyFormatError,
    NoIdentityMatchError,
    Recipient,
    ScryptRecipient,
    Stanza,
    X25519Identity,
    allow_mixed_post_quantum,
    bech32,
    decrypt,
    encrypt,
    is_post_quantum,
    parse_identity_file,
    parse_recipient,
    read_header,
    recipient_kind,
    rewrap,
)
from vault.age.header import encode_header
from vault.age.writer import AgeWriter

REPO = Path(__file__).resolve().parents[2]

# The example key pair of the C2SP age spec (c2sp.org/age, MLKEM768-X25519 section).
SPEC_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
SPEC_RECIPIENT = (
    "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aap"
    "dmwjjqpjfdyxnzr2zampc3uxy0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec47"
    "7lnhcy5hzpz4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8"
    "wwtmu9cy3ftzjgwcp4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj742479zrxzpvp2p3e9"
    "fed9f0739vcu80r7ma28qfhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6d"
    "vp9yn9qfdp29h0azxqyjw6v7fhyuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj4"
    "3xe8h92ktre2a3u3s8mm5mrp9nr9pwkgtz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8"
    "f0dajsrlyjeah4n3mssr6aseevuuskdvq5lzguyvpgwpta742c6698vgutzqgny8usfg0w2he7kq5vyxjd0f9hqg"
    "8xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjhkfgfr3gf"
    "8xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5fq2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k"
    "5jgf3xzk5zmrkavjekjrpeq408xz3zxazwkc6tyfmhayrkfpjhwtz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu"
    "5etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk38ra6hx8w5f8q5ru0xdhrjxmwqf6cused7zc5xvq43r0zscj"
    "glpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs297wf4y4ukwrunf57xj6pm7nvrkwv"
    "trt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenvamr0zssknwts8rrhfuwj7yk"
    "ysnq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gch25v8smlvny3kvn5g"
    "agyz475ze2y6q466xqmz2n3hs77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrmakm7pr3kxsrxq"
    "22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yqffh2la52dxfjkjq5rzhjzeyn6dupn0qwtyv7s4lw"
    "g3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7qvp5cpepx24gvws3m"
    "2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53j"
    "ff0vjj96s0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5h"
    "kntzz9fe5zatgjvzdd0kgtxs25njnajyf6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043"
    "x3msnygf8dweknw5jmqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkmhh6gjtqmwze9pyyzk3tlhl53k2ykx3"
    "qheyty7saeq0d3fzv49zc0k"
)
FILE_KEY = bytes(range(16))
PLAINTEXT = os.urandom(3 * 64 * 1024 + 99)


@pytest.fixture(scope="module")
def identity() -> HybridIdentity:
    return HybridIdentity.generate()


def seal(plaintext: bytes, recipients: Sequence[Recipient], *, armor: bool = False) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(plaintext), out, recipients, armor=armor)
    return out.getvalue()


def open_file(data: bytes, identities: Sequence[Identity]) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(data), out, identities)
    return out.getvalue()


def hybrid_stanza(identity: HybridIdentity) -> Stanza:
    (stanza,) = identity.recipient().wrap(FILE_KEY)
    return stanza


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


# Keys and encodings


def test_the_spec_example_identity_gives_the_spec_example_recipient() -> None:
    identity = HybridIdentity.from_string(SPEC_IDENTITY)
    assert identity.recipient().to_string() == SPEC_RECIPIENT
    assert identity.to_string() == SPEC_IDENTITY
    assert HybridRecipient.from_string(SPEC_RECIPIENT) == identity.recipient()


def test_a_generated_key_has_the_age_encodings(identity: HybridIdentity) -> None:
    text = identity.to_string()
    assert re.fullmatch(r"AGE-SECRET-KEY-PQ-1[0-9A-Z]{58}", text)
    recipient = identity.recipient().to_string()
    # Bech32 without BIP 173's 90-character limit: 1216 key bytes in 1,959 characters.
    assert recipient.startswith("age1pq1") and len(recipient) == 1959
    assert len(identity.recipient().public_key) == 1216
    assert HybridIdentity.from_string(text) == identity
    assert HybridIdentity.generate() != identity
    assert text not in repr(identity) and "AGE-SECRET" not in repr(identity)


def test_parse_recipient_and_identity_file_accept_both_kinds(identity: HybridIdentity) -> None:
    classic = X25519Identity.generate()
    assert parse_recipient(identity.recipient().to_string()) == identity.recipient()
    assert parse_recipient(classic.recipient().to_string()) == classic.recipient()
    text = (
        f"# created: now\n# public key: {identity.recipient()}\n{identity.to_string()}\n"
        f"\n{classic.to_string()}\n"
    )
    assert parse_identity_file(text) == [identity, classic]
    assert is_post_quantum(identity.recipient()) and not is_post_quantum(classic.recipient())
    assert recipient_kind(identity.recipient().to_string()) == KIND_HYBRID
    assert recipient_kind(classic.recipient().to_string()) == KIND_X25519
    assert KIND_HYBRID == "hybrid post-quantum (ML-KEM-768 + X25519)"


# Hostile keys


def test_a_recipient_of_the_wrong_length_is_refused() -> None:
    short = bech32.encode("age1pq", os.urandom(1215))
    with pytest.raises(KeyFormatError, match="wrong key length"):
        HybridRecipient.from_string(short)
    with pytest.raises(KeyFormatError, match="1216 bytes"):
        HybridRecipient(os.urandom(1217))


def test_an_identity_of_the_wrong_length_is_refused() -> None:
    long = bech32.encode("AGE-SECRET-KEY-PQ-", os.urandom(33)).upper()
    with pytest.raises(KeyFormatError, match="wrong key length"):
        HybridIdentity.from_string(long)


def test_a_bad_bech32_checksum_is_refused() -> None:
    last = SPEC_RECIPIENT[-1]
    broken = SPEC_RECIPIENT[:-1] + ("q" if last != "q" else "p")
    with pytest.raises(KeyFormatError, match="invalid checksum"):
        HybridRecipient.from_string(broken)
    with pytest.raises(KeyFormatError, match="invalid checksum"):
        parse_recipient(broken)
    broken_identity = SPEC_IDENTITY[:-1] + ("Q" if SPEC_IDENTITY[-1] != "Q" else "P")
    with pytest.raises(KeyFormatError, match="invalid checksum"):
        HybridIdentity.from_string(broken_identity)


def test_mixed_case_and_wrong_case_are_refused() -> None:
    mixed = SPEC_RECIPIENT[:10] + SPEC_RECIPIENT[10:20].upper() + SPEC_RECIPIENT[20:]
    with pytest.raises(KeyFormatError, match="mixed case"):
        HybridRecipient.from_string(mixed)
    with pytest.raises(KeyFormatError, match="lowercase age1pq1"):
        HybridRecipient.from_string(SPEC_RECIPIENT.upper())
    with pytest.raises(KeyFormatError, match="uppercase AGE-SECRET-KEY-PQ-1"):
        HybridIdentity.from_string(SPEC_IDENTITY.lower())


def test_an_x25519_key_is_not_a_hybrid_key_and_back() -> None:
    classic = X25519Identity.generate()
    with pytest.raises(KeyFormatError, match="not a hybrid age recipient"):
        HybridRecipient.from_string(classic.recipient().to_string())
    with pytest.raises(KeyFormatError, match="not a hybrid age identity"):
        HybridIdentity.from_string(classic.to_string())
    with pytest.raises(KeyFormatError, match="not an X25519 age identity"):
        X25519Identity.from_string(SPEC_IDENTITY)


def test_an_invalid_ml_kem_public_key_is_refused() -> None:
    # Coefficients of 0xfff are above q = 3329: FIPS 203's modulus check fails.
    with pytest.raises(KeyFormatError, match="ML-KEM-768 part"):
        HybridRecipient(b"\xff" * 1184 + bytes(32))


def test_an_identity_file_error_names_the_line_but_not_the_secret() -> None:
    secret = SPEC_IDENTITY[:-1] + ("Q" if SPEC_IDENTITY[-1] != "Q" else "P")
    with pytest.raises(KeyFormatError, match="line 2 is not an age identity") as raised:
        parse_identity_file(f"# comment\n{secret}\n")
    assert secret[20:] not in str(raised.value)


# Round trips


def test_a_file_round_trips(identity: HybridIdentity) -> None:
    data = seal(PLAINTEXT, [identity.recipient()])
    (stanza,) = read_header(io.BytesIO(data)).stanzas
    assert stanza.args[0] == "mlkem768x25519" and len(stanza.args) == 2
    assert len(base64.b64decode(stanza.args[1] + "==")) == 1120 and len(stanza.body) == 32
    assert open_file(data, [identity]) == PLAINTEXT
    assert open_file(data, [X25519Identity.generate(), identity]) == PLAINTEXT


def test_an_armored_file_round_trips(identity: HybridIdentity) -> None:
    data = seal(b"armored", [identity.recipient()], armor=True)
    assert data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert open_file(data, [identity]) == b"armored"


def test_several_hybrid_recipients_each_open_the_file(identity: HybridIdentity) -> None:
    other = HybridIdentity.generate()
    data = seal(PLAINTEXT, [identity.recipient(), other.recipient()])
    assert open_file(data, [identity]) == PLAINTEXT
    assert open_file(data, [other]) == PLAINTEXT
    with pytest.raises(NoIdentityMatchError):
        open_file(data, [HybridIdentity.generate()])


def test_every_wrap_uses_a_fresh_encapsulation(identity: HybridIdentity) -> None:
    assert hybrid_stanza(identity).args[1] != hybrid_stanza(identity).args[1]


def test_the_agewriter_seals_to_a_hybrid_key(identity: HybridIdentity) -> None:
    pieces: list[bytes] = []
    writer = AgeWriter(lambda piece: pieces.append(bytes(piece)), [identity.recipient()])
    writer.write(PLAINTEXT)
    writer.close()
    assert open_file(b"".join(pieces), [identity]) == PLAINTEXT


def test_rewrap_moves_a_hybrid_file_to_another_hybrid_key(identity: HybridIdentity) -> None:
    data = seal(PLAINTEXT, [identity.recipient()])
    other = HybridIdentity.generate()
    out = io.BytesIO()
    rewrap(io.BytesIO(data), out, [identity], [other.recipient()])
    assert open_file(out.getvalue(), [other]) == PLAINTEXT
    with pytest.raises(NoIdentityMatchError):
        open_file(out.getvalue(), [identity])


# The spec's mixing rule


def test_encrypting_to_hybrid_and_x25519_together_is_refused(identity: HybridIdentity) -> None:
    classic = X25519Identity.generate().recipient()
    for recipients in ([identity.recipient(), classic], [classic, identity.recipient()]):
        with pytest.raises(ValueError, match="cannot be mixed with X25519"):
            seal(b"x", recipients)
        with pytest.raises(ValueError, match="cannot be mixed with X25519"):
            AgeWriter(lambda piece: None, recipients)


def test_rewrapping_to_a_mix_is_refused(identity: HybridIdentity) -> None:
    data = seal(b"x", [identity.recipient()])
    mixed = [identity.recipient(), X25519Identity.generate().recipient()]
    with pytest.raises(ValueError, match="cannot be mixed with X25519"):
        rewrap(io.BytesIO(data), io.BytesIO(), [identity], mixed)


def test_a_deliberate_mix_is_sealed_and_both_keys_open_it(identity: HybridIdentity) -> None:
    classic = X25519Identity.generate()
    data = seal(PLAINTEXT, allow_mixed_post_quantum([identity.recipient(), classic.recipient()]))
    assert [s.type for s in read_header(io.BytesIO(data)).stanzas] == ["mlkem768x25519", "X25519"]
    assert open_file(data, [identity]) == PLAINTEXT
    assert open_file(data, [classic]) == PLAINTEXT


def test_the_command_line_refuses_a_mix(identity: HybridIdentity) -> None:
    classic = X25519Identity.generate().recipient().to_string()
    with pytest.raises(cli.VaultCliError, match="cannot be mixed with X25519"):
        cli.load_recipients([identity.recipient().to_string(), classic], [])


# Hostile stanzas


def decrypt_header_with(identity: HybridIdentity, stanza: Stanza) -> bytes:
    header = encode_header([stanza], FILE_KEY)
    return open_file(header + os.urandom(16 + 16), [identity])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("mlkem768x25519",), "exactly two arguments"),
        (("mlkem768x25519", "AAAA", "extra"), "exactly two arguments"),
        (("mlkem768x25519", b64(os.urandom(1119))), "not 1120 bytes"),
        (("mlkem768x25519", b64(os.urandom(1121))), "not 1120 bytes"),
        (("mlkem768x25519", "AB=="), "not valid unpadded base64"),
        (("mlkem768x25519", "AB"), "not canonical base64"),
    ],
    ids=["one-arg", "three-args", "short-enc", "long-enc", "padded", "non-canonical"],
)
def test_bad_stanza_arguments_are_header_failures(
    identity: HybridIdentity, args: tuple[str, ...], reason: str
) -> None:
    stanza = Stanza(args=args, body=hybrid_stanza(identity).body)
    with pytest.raises(HeaderError, match=reason):
        decrypt_header_with(identity, stanza)


def test_a_body_of_the_wrong_length_is_refused_before_decrypting(
    identity: HybridIdentity,
) -> None:
    stanza = hybrid_stanza(identity)
    with pytest.raises(HeaderError, match="body is not 32 bytes"):
        decrypt_header_with(identity, replace(stanza, body=stanza.body + b"\x00"))


def tampered_enc(stanza: Stanza, index: int) -> Stanza:
    enc = bytearray(base64.b64decode(stanza.args[1] + "=="))
    enc[index] ^= 0x01
    return replace(stanza, args=(stanza.args[0], b64(bytes(enc))))


@pytest.mark.parametrize(
    "index", [0, 1087, 1088, 1119], ids=["mlkem-0", "mlkem-end", "x-0", "x-end"]
)
def test_a_tampered_share_does_not_open(identity: HybridIdentity, index: int) -> None:
    with pytest.raises(NoIdentityMatchError):
        decrypt_header_with(identity, tampered_enc(hybrid_stanza(identity), index))


def test_a_tampered_body_does_not_open(identity: HybridIdentity) -> None:
    stanza = hybrid_stanza(identity)
    body = bytearray(stanza.body)
    body[-1] ^= 0x80
    with pytest.raises(NoIdentityMatchError):
        decrypt_header_with(identity, replace(stanza, body=bytes(body)))


@pytest.mark.parametrize("point", [bytes(32), (1).to_bytes(32, "little")], ids=["zero", "one"])
def test_a_low_order_x25519_share_is_a_header_failure(
    identity: HybridIdentity, point: bytes
) -> None:
    stanza = hybrid_stanza(identity)
    enc = base64.b64decode(stanza.args[1] + "==")[:1088] + point
    with pytest.raises(HeaderError, match="low-order point"):
        decrypt_header_with(identity, replace(stanza, args=(stanza.args[0], b64(enc))))


def test_an_uppercase_stanza_type_is_not_ours(identity: HybridIdentity) -> None:
    stanza = hybrid_stanza(identity)
    with pytest.raises(NoIdentityMatchError):
        decrypt_header_with(identity, replace(stanza, args=("MLKEM768X25519", stanza.args[1])))


def test_an_x25519_identity_ignores_a_hybrid_stanza(identity: HybridIdentity) -> None:
    header = encode_header([hybrid_stanza(identity)], FILE_KEY)
    with pytest.raises(NoIdentityMatchError):
        open_file(header + os.urandom(32), [X25519Identity.generate()])


# vault keygen --pq


def run_vault(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESCROW_VAR_DIR": str(cwd / "var")}
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "vault", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        start_new_session=True,
    )


def test_vault_keygen_pq_makes_a_hybrid_identity_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    result = run_vault("keygen", "--pq", "-o", key_file, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    (identity,) = parse_identity_file(key_file.read_text())
    assert isinstance(identity, HybridIdentity)
    public = identity.recipient().to_string()
    assert f"# public key: {public}\n" in key_file.read_text()
    assert result.stderr == f"Public key: {public}\n"
    again = run_vault("keygen", "--pq", "-o", key_file, cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_vault_keygen_without_pq_makes_an_x25519_identity(tmp_path: Path) -> None:
    result = run_vault("keygen", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (identity,) = parse_identity_file(result.stdout)
    assert isinstance(identity, X25519Identity)


def test_vault_encrypts_and_decrypts_with_a_pq_key_from_keygen(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    assert run_vault("keygen", "--pq", "-o", key_file, cwd=tmp_path).returncode == 0
    (identity,) = parse_identity_file(key_file.read_text())
    plain, sealed, opened = tmp_path / "plain", tmp_path / "plain.age", tmp_path / "out"
    plain.write_bytes(PLAINTEXT)
    recipient = identity.recipient().to_string()
    result = run_vault("encrypt", "-r", recipient, "-o", sealed, plain, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_vault("decrypt", "-i", key_file, "-o", opened, sealed, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert opened.read_bytes() == PLAINTEXT


# Debian's age 1.1.1 predates the hybrid type


@pytest.fixture(scope="module")
def age_tool() -> str:
    path = shutil.which("age")
    if path is None:
        pytest.fail("the `age` binary is required (install the Debian package `age`)")
    return path


def run_age(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["age", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_debian_age_refuses_a_hybrid_recipient(
    age_tool: str, identity: HybridIdentity, tmp_path: Path
) -> None:
    (tmp_path / "plain").write_bytes(b"x")
    result = run_age(
        "-r", identity.recipient().to_string(), "-o", tmp_path / "x.age", "plain", cwd=tmp_path
    )
    # age 1.1.1 reads "age1pq1..." as a key for a plugin named "pq", which is not there.
    assert result.returncode != 0
    assert "pq plugin" in result.stderr
    assert not (tmp_path / "x.age").exists()


def test_debian_age_refuses_a_hybrid_identity_file(
    age_tool: str, identity: HybridIdentity, tmp_path: Path
) -> None:
    sealed = tmp_path / "x.age"
    sealed.write_bytes(seal(b"secret", [identity.recipient()]))
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity.to_string() + "\n")
    result = run_age("-d", "-i", key_file, sealed, cwd=tmp_path)
    assert result.returncode != 0
    assert "unknown identity type" in result.stderr
    assert "secret" not in result.stdout


def test_debian_age_finds_no_identity_for_a_hybrid_file(
    age_tool: str, identity: HybridIdentity, tmp_path: Path
) -> None:
    classic = X25519Identity.generate()
    key_file = tmp_path / "classic.txt"
    key_file.write_text(classic.to_string() + "\n")
    sealed = tmp_path / "x.age"
    sealed.write_bytes(seal(b"secret", [identity.recipient()]))
    result = run_age("-d", "-i", key_file, sealed, cwd=tmp_path)
    assert result.returncode != 0
    assert "no identity matched" in result.stderr
    # ... while our implementation opens the same file with the hybrid identity.
    assert open_file(sealed.read_bytes(), [identity]) == b"secret"


def test_a_passphrase_with_a_hybrid_key_is_refused_as_a_passphrase_not_alone(
    identity: HybridIdentity,
) -> None:
    with pytest.raises(ValueError, match=r"\(scrypt\) recipient must be the only"):
        seal(b"x", [identity.recipient(), ScryptRecipient("a passphrase", work_factor=2)])
