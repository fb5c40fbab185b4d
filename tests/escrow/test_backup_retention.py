"""The backup retention policy: restic's ``forget --keep-daily/-weekly/-monthly/-yearly``.

Hand-made series for each rule and its boundaries, properties checked with
hypothesis against a plain "N most recent buckets" model, the ``backup_policy``
command, and the same answers as a real restic on a real repository."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given, settings
from hypothesis import strategies as st

from escrow.backups.retention import (
    BUCKETS,
    EMPTY_POLICY,
    RULES,
    Keep,
    TimestampError,
    apply_policy,
    keep_reasons,
    parse_timestamp,
    parse_timestamps,
    stamp_reasons,
)

ROOT = Path(__file__).resolve().parents[2]


def at(text: str) -> datetime:
    """'2024-05-15 10:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def kept(series: list[str], keep: Keep, **options: Any) -> dict[str, tuple[str, ...]]:
    """The kept members of a hand-made series, by their text, with their reasons."""
    reasons = keep_reasons([at(text) for text in series], keep, **options)
    return {text: why for text, why in zip(series, reasons, strict=True) if why}


# --- Each rule on hand-made series -------------------------------------------------


def test_daily_keeps_the_newest_of_each_of_the_last_n_days_that_have_a_backup() -> None:
    series = [
        "2024-03-10 23:00",
        "2024-03-10 08:00",
        "2024-03-09 12:00",
        # no backup on 03-08: a gap does not use up a day
        "2024-03-07 12:00",
        "2024-03-07 01:00",
        "2024-03-01 00:00",
    ]
    assert kept(series, Keep(daily=3)) == {
        "2024-03-10 23:00": ("daily",),
        "2024-03-09 12:00": ("daily",),
        "2024-03-07 12:00": ("daily",),
    }


def test_input_order_does_not_matter() -> None:
    series = ["2024-03-07 01:00", "2024-03-10 08:00", "2024-03-07 12:00", "2024-03-10 23:00"]
    assert set(kept(series, Keep(daily=2))) == {"2024-03-10 23:00", "2024-03-07 12:00"}


def test_weekly_uses_iso_weeks_across_the_new_year() -> None:
    series = [
        "2021-01-04 00:00",  # Monday: 2021-W01
        "2021-01-03 12:00",  # Sunday: still 2020-W53
        "2020-12-31 12:00",  # 2020-W53
        "2020-12-28 00:00",  # Monday of 2020-W53
        "2020-12-27 23:59",  # Sunday: 2020-W52
    ]
    assert set(kept(series, Keep(weekly=2))) == {"2021-01-04 00:00", "2021-01-03 12:00"}
    assert set(kept(series, Keep(weekly=3))) == {
        "2021-01-04 00:00",
        "2021-01-03 12:00",
        "2020-12-27 23:59",
    }
    # The calendar year is not the ISO year: yearly splits the same series elsewhere.
    assert set(kept(series, Keep(yearly=2))) == {"2021-01-04 00:00", "2020-12-31 12:00"}


def test_a_late_december_day_can_be_in_next_years_first_iso_week() -> None:
    series = ["2020-01-01 10:00", "2019-12-30 10:00", "2019-12-29 10:00"]
    # 2019-12-30 is in 2020-W01, the week of 2020-01-01; 2019-12-29 is 2019-W52.
    assert set(kept(series, Keep(weekly=2))) == {"2020-01-01 10:00", "2019-12-29 10:00"}
    assert set(kept(series, Keep(yearly=2))) == {"2020-01-01 10:00", "2019-12-30 10:00"}


def test_monthly_and_yearly_boundaries_are_utc() -> None:
    series = ["2024-03-01 00:00", "2024-02-29 23:59:59", "2024-02-01 00:00", "2023-12-31 23:59"]
    assert set(kept(series, Keep(monthly=2))) == {"2024-03-01 00:00", "2024-02-29 23:59:59"}
    assert set(kept(series, Keep(yearly=5))) == {"2024-03-01 00:00", "2023-12-31 23:59"}
    # 00:30 on 1 March at +01:00 is 23:30 UTC on 29 February: a February backup, so
    # the 28th is a new day but not a new month.
    paris = timezone(timedelta(hours=1))
    moments = [datetime(2024, 3, 1, 0, 30, tzinfo=paris), at("2024-02-28 12:00")]
    assert keep_reasons(moments, Keep(monthly=2, daily=5)) == [("daily", "monthly"), ("daily",)]


def test_a_combined_policy_names_every_rule_that_keeps_a_backup() -> None:
    series = [
        "2024-05-15 10:00",  # Wednesday, 2024-W20
        "2024-05-15 08:00",  # same day: nothing new
        "2024-05-14 10:00",  # second day
        "2024-05-13 10:00",  # daily used up; same week as the 15th
        "2024-05-08 10:00",  # 2024-W19
        "2024-04-30 10:00",  # 2024-W18 (weekly used up), April
        "2024-04-02 10:00",  # April again
        "2023-12-31 10:00",  # the yearly one went to 2024
    ]
    assert kept(series, Keep(daily=2, weekly=2, monthly=2, yearly=1)) == {
        "2024-05-15 10:00": ("daily", "weekly", "monthly", "yearly"),
        "2024-05-14 10:00": ("daily",),
        "2024-05-08 10:00": ("weekly",),
        "2024-04-30 10:00": ("monthly",),
    }


def test_n_larger_than_the_history_keeps_one_per_bucket() -> None:
    series = ["2024-05-15 10:00", "2024-05-15 08:00", "2024-05-13 10:00"]
    assert set(kept(series, Keep(daily=100, weekly=100))) == {
        "2024-05-15 10:00",
        "2024-05-13 10:00",
    }


def test_every_rule_off_keeps_everything_like_restic() -> None:
    # restic's ApplyPolicy keeps all ("policy is empty"); restic forget removes none.
    series = ["2024-05-15 10:00", "2024-05-15 08:00", "2020-01-01 00:00"]
    assert kept(series, Keep()) == dict.fromkeys(series, (EMPTY_POLICY,))


def test_no_backups_keeps_nothing() -> None:
    assert keep_reasons([], Keep(daily=3)) == []
    assert apply_policy([], Keep(daily=3)) == {}


def test_of_two_backups_at_one_instant_the_first_given_is_kept() -> None:
    # restic sorts with sort.Stable, so equal times keep the order they were listed in.
    twins = [at("2024-05-15 10:00"), at("2024-05-15 10:00"), at("2024-05-14 10:00")]
    assert keep_reasons(twins, Keep(daily=5)) == [("daily",), (), ("daily",)]
    assert apply_policy(twins, Keep(daily=5)) == {twins[0]: ["daily"], twins[2]: ["daily"]}


def test_apply_policy_keys_are_the_given_datetimes() -> None:
    moments = [at("2024-05-15 10:00"), at("2024-05-14 10:00"), at("2024-05-14 09:00")]
    result = apply_policy(moments, Keep(daily=1, weekly=1))
    assert result == {moments[0]: ["daily", "weekly"]}
    assert next(iter(result)) is moments[0]


def test_keep_oldest_is_restic_0_17s_extra_keep_while_a_rule_has_count_left() -> None:
    series = ["2024-05-15 10:00", "2024-05-15 09:00", "2024-05-14 12:00", "2024-05-14 08:00"]
    assert set(kept(series, Keep(daily=5))) == {"2024-05-15 10:00", "2024-05-14 12:00"}
    assert kept(series, Keep(daily=5, weekly=1), keep_oldest=True) == {
        "2024-05-15 10:00": ("daily", "weekly"),
        "2024-05-14 12:00": ("daily",),
        "2024-05-14 08:00": ("oldest daily",),
    }
    # A rule that used up its count keeps no oldest one.
    assert set(kept(series, Keep(daily=2), keep_oldest=True)) == {
        "2024-05-15 10:00",
        "2024-05-14 12:00",
    }
    # The oldest in a bucket of its own is an ordinary keep.
    assert kept(["2024-05-15 10:00", "2024-05-13 10:00"], Keep(daily=5), keep_oldest=True) == {
        "2024-05-15 10:00": ("daily",),
        "2024-05-13 10:00": ("daily",),
    }


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3", None])
def test_keep_refuses_anything_but_a_non_negative_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="weekly must be an integer >= 0"):
        Keep(weekly=bad)  # type: ignore[arg-type]


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        keep_reasons([at("2024-05-15 10:00"), datetime(2024, 5, 14)], Keep(daily=3))


# --- Reading timestamps --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "moment", "nanos"),
    [
        ("2024-05-01T02:00:00Z", datetime(2024, 5, 1, 2, tzinfo=UTC), 0),
        ("2024-05-01T02:00:00+00:00", datetime(2024, 5, 1, 2, tzinfo=UTC), 0),
        ("2024-05-01T02:00:00-00:00", datetime(2024, 5, 1, 2, tzinfo=UTC), 0),
        ("2024-05-01 02:00:00z", datetime(2024, 5, 1, 2, tzinfo=UTC), 0),
        ("2024-05-01t02:00:00.5Z", datetime(2024, 5, 1, 2, 0, 0, 500000, tzinfo=UTC), 0),
        (
            "2024-05-01T02:00:00.123456789Z",
            datetime(2024, 5, 1, 2, 0, 0, 123456, tzinfo=UTC),
            789,
        ),
    ],
)
def test_utc_timestamps_are_read(text: str, moment: datetime, nanos: int) -> None:
    assert parse_timestamp(text) == (moment, nanos)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2024-05-01T02:00:00", "has no time zone"),
        ("2024-05-01T02:00:00+02:00", r"is not in UTC \(offset \+02:00\)"),
        ("2024-05-01", "is not an ISO-8601 timestamp"),
        ("2024-05-01T02:00Z", "is not an ISO-8601 timestamp"),
        ("20240501T020000Z", "is not an ISO-8601 timestamp"),
        ("2024-05-01T02:00:00.1234567890Z", "is not an ISO-8601 timestamp"),
        ("٢٠٢٤-05-01T02:00:00Z", "is not an ISO-8601 timestamp"),  # Arabic-Indic digits
        ("2023-02-29T02:00:00Z", "is not a valid date and time"),
        ("2024-05-01T24:00:00Z", "is not a valid date and time"),
        ("2016-12-31T23:59:60Z", "is not a valid date and time"),
        ("0000-01-01T00:00:00Z", "is not a valid date and time"),
        ("rm -rf /; " * 50, r"is not an ISO-8601 timestamp"),
    ],
)
def test_anything_else_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_timestamp(text)


def test_a_long_bad_line_is_quoted_only_in_part() -> None:
    with pytest.raises(ValueError) as raised:
        parse_timestamp("x" * 10_000)
    assert len(str(raised.value)) < 200


def test_parse_timestamps_skips_blank_lines_and_names_every_bad_line() -> None:
    stamps = parse_timestamps(["\n", "  2024-05-01T02:00:00Z \r\n", "", "2024-05-02T02:00:00Z"])
    assert [(s.line, s.text) for s in stamps] == [
        (2, "2024-05-01T02:00:00Z"),
        (4, "2024-05-02T02:00:00Z"),
    ]
    with pytest.raises(TimestampError) as raised:
        parse_timestamps(["2024-05-01T02:00:00Z", "yesterday", "", "2024-05-01T02:00:00"])
    assert [line for line, _ in raised.value.problems] == [2, 4]
    assert str(raised.value).splitlines()[0].startswith("line 2: 'yesterday'")


def test_stamps_within_one_microsecond_are_ordered_to_the_nanosecond() -> None:
    # restic keeps the later of two snapshots in one microsecond; so do we.
    stamps = parse_timestamps(["2024-05-01T02:00:00.000000001Z", "2024-05-01T02:00:00.000000002Z"])
    assert stamp_reasons(stamps, Keep(daily=1)) == [(), ("daily",)]


# --- Properties ------------------------------------------------------------------------

BASE = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
# Dense (several a day, recent) and sparse (years) backups, and repeats of either.
moments_strategy = st.one_of(
    st.integers(min_value=0, max_value=60 * 24).map(lambda h: BASE - timedelta(hours=h)),
    st.integers(min_value=0, max_value=5 * 365).map(lambda d: BASE - timedelta(days=d)),
    st.integers(min_value=0, max_value=10**8).map(lambda s: BASE - timedelta(seconds=s)),
)
series_strategy = st.lists(moments_strategy, max_size=60)
keep_strategy = st.builds(
    Keep,
    daily=st.integers(0, 8),
    weekly=st.integers(0, 8),
    monthly=st.integers(0, 8),
    yearly=st.integers(0, 4),
)


def model(moments: list[datetime], rule: str, n: int) -> set[int]:
    """The issue's wording, independently: the newest backup (first given among equal
    times) of each of the rule's n most recent buckets that have a backup."""
    newest_first = sorted(range(len(moments)), key=moments.__getitem__, reverse=True)
    heads: dict[int, int] = {}
    for position in newest_first:
        heads.setdefault(BUCKETS[rule](moments[position]), position)
    recent = sorted(heads, reverse=True)[:n]
    return {heads[bucket] for bucket in recent}


@settings(deadline=None)
@given(moments=series_strategy, keep=keep_strategy)
def test_each_rule_keeps_the_newest_backup_of_its_n_most_recent_buckets(
    moments: list[datetime], keep: Keep
) -> None:
    reasons = keep_reasons(moments, keep)
    assert len(reasons) == len(moments)
    if keep.is_empty:
        assert all(why == (EMPTY_POLICY,) for why in reasons)
        return
    for rule in RULES:
        by_rule = {i for i, why in enumerate(reasons) if rule in why}
        assert by_rule == model(moments, rule, keep.count(rule))
        buckets = {BUCKETS[rule](moments[i]) for i in by_rule}
        assert len(buckets) == len(by_rule) <= keep.count(rule)
    # restic's own test invariant: never more kept than the counts add up to.
    assert sum(1 for why in reasons if why) <= sum(keep.count(rule) for rule in RULES)
    assert set(apply_policy(moments, keep)) == {moments[i] for i, why in enumerate(reasons) if why}


@settings(deadline=None)
@given(moments=series_strategy.filter(bool), keep=keep_strategy)
def test_the_newest_backup_is_always_kept(moments: list[datetime], keep: Keep) -> None:
    newest = max(range(len(moments)), key=lambda i: (moments[i], -i))
    assert keep_reasons(moments, keep)[newest]
    assert max(moments) in apply_policy(moments, keep)


@settings(deadline=None)
@given(
    moments=series_strategy,
    keep=keep_strategy.filter(lambda k: not k.is_empty),
    rule=st.sampled_from(RULES),
    more=st.integers(1, 5),
    keep_oldest=st.booleans(),
)
def test_a_larger_n_never_drops_a_kept_backup(
    moments: list[datetime], keep: Keep, rule: str, more: int, keep_oldest: bool
) -> None:
    larger = replace(keep, **{rule: keep.count(rule) + more})
    before = keep_reasons(moments, keep, keep_oldest=keep_oldest)
    after = keep_reasons(moments, larger, keep_oldest=keep_oldest)
    assert all(a for b, a in zip(before, after, strict=True) if b)


@settings(deadline=None)
@given(moments=series_strategy, keep=keep_strategy, seed=st.integers(0, 2**32))
def test_the_kept_instants_do_not_depend_on_the_input_order(
    moments: list[datetime], keep: Keep, seed: int
) -> None:
    shuffled = list(moments)
    random.Random(seed).shuffle(shuffled)
    assert Counter(
        m for m, why in zip(moments, keep_reasons(moments, keep), strict=True) if why
    ) == Counter(m for m, why in zip(shuffled, keep_reasons(shuffled, keep), strict=True) if why)


@settings(deadline=None)
@given(moments=series_strategy.filter(bool), keep=keep_strategy.filter(lambda k: not k.is_empty))
def test_keep_oldest_adds_at_most_the_oldest_backup(moments: list[datetime], keep: Keep) -> None:
    plain = keep_reasons(moments, keep)
    extra = keep_reasons(moments, keep, keep_oldest=True)
    added = {i for i in range(len(moments)) if extra[i] and not plain[i]}
    oldest = min(range(len(moments)), key=lambda i: (moments[i], -i))
    assert added <= {oldest}
    assert all(
        set(p) <= {r.removeprefix("oldest ") for r in e} for p, e in zip(plain, extra, strict=True)
    )


# --- The backup_policy command --------------------------------------------------------

INPUT = """\
2024-05-15T10:00:00Z

2024-05-15T08:00:00Z
2024-05-14 10:00:00+00:00
2024-05-08T10:00:00.250Z
2023-12-31T10:00:00z
"""


def run(*args: str, stdin: str | io.TextIOBase = INPUT) -> str:
    out = io.StringIO()
    source = io.StringIO(stdin) if isinstance(stdin, str) else stdin
    call_command("backup_policy", *args, stdin=source, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_kept_timestamps_exactly_as_given_in_input_order() -> None:
    assert run("--keep-daily", "2", "--keep-yearly", "2") == (
        "2024-05-15T10:00:00Z\n2024-05-14 10:00:00+00:00\n2023-12-31T10:00:00z\n"
    )


def test_the_command_explains_which_rules_keep_each() -> None:
    assert run("--keep-daily=2", "--keep-weekly=2", "--explain") == (
        "2024-05-15T10:00:00Z  # daily, weekly\n"
        "2024-05-14 10:00:00+00:00  # daily\n"
        "2024-05-08T10:00:00.250Z  # weekly\n"
    )


def test_the_command_with_no_rule_keeps_everything_like_restic() -> None:
    assert run("--explain").count(f"# {EMPTY_POLICY}") == 5


def test_the_command_with_no_input_prints_nothing() -> None:
    assert run("--keep-daily", "3", stdin="\n\n") == ""


def test_a_bad_line_is_an_error_naming_its_number_and_nothing_is_printed() -> None:
    out = io.StringIO()
    bad = INPUT.replace("2024-05-08T10:00:00.250Z", "2024-05-08T10:00:00+02:00")
    with pytest.raises(CommandError, match=r"line 5: '2024-05-08T10:00:00\+02:00' is not in UTC"):
        call_command("backup_policy", "--keep-daily=2", stdin=io.StringIO(bad), stdout=out)
    assert out.getvalue() == ""


def test_a_line_that_is_not_utf8_is_a_bad_line_with_its_number() -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"2024-05-15T10:00:00Z\n\xff\xfe2024\n"), encoding="utf-8")
    with pytest.raises(CommandError, match="line 2: "):
        run("--keep-daily=2", stdin=stdin)


@pytest.mark.parametrize("args", [("--keep-weekly", "-1"), ("--keep-weekly=three",)])
def test_the_command_refuses_a_negative_or_non_numeric_n(args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError, match="keep-weekly"):
        run(*args)


def test_the_command_refuses_a_negative_n_given_as_an_option() -> None:
    # call_command's keyword options bypass argparse's type check.
    with pytest.raises(CommandError, match="weekly must be an integer >= 0"):
        call_command("backup_policy", keep_weekly=-1, stdin=io.StringIO(INPUT))


def test_the_command_from_a_shell_reads_stdin_and_fails_with_a_status() -> None:
    def manage(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "manage.py", "backup_policy", "--keep-daily", "1"],
            input=stdin,
            capture_output=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    good = manage(b"2024-05-14T10:00:00Z\r\n2024-05-15T10:00:00Z\r\n")
    assert (good.returncode, good.stdout) == (0, b"2024-05-15T10:00:00Z\n"), good.stderr
    bad = manage(b"2024-05-14T10:00:00Z\nnot a time\n")
    assert bad.returncode != 0
    assert b"line 2: 'not a time'" in bad.stderr
    assert bad.stdout == b""


# --- Interoperability with the real restic ---------------------------------------------

PASSWORD = "retention-test"


@dataclass
class Restic:
    """A restic repository in a temporary folder, all of one host and path."""

    binary: str
    folder: Path
    version: tuple[int, ...]

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.folder),
            # restic reads --time, and buckets snapshots, in local time: make it UTC.
            "TZ": "UTC",
            "RESTIC_REPOSITORY": str(self.folder / "repo"),
            "RESTIC_PASSWORD": PASSWORD,
        }

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [self.binary, "--no-cache", *args],
            env=self.env(),
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"restic {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout


def _derive(key: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """The AES-256 key and the Poly1305-AES key (k, r) a key file's scrypt gives."""
    derived = hashlib.scrypt(
        PASSWORD.encode(),
        salt=base64.b64decode(key["salt"]),
        n=key["N"],
        r=key["r"],
        p=key["p"],
        maxmem=2**31 - 1,
        dklen=64,
    )
    return derived[:32], derived[32:48], derived[48:]


def _mac(k: bytes, r: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    # Poly1305-AES: the one-time key is r and AES_k(nonce).
    s = Cipher(algorithms.AES(k), modes.ECB()).encryptor().update(iv)
    return Poly1305.generate_tag(r + s, ciphertext)


def _cheapen_key(repo: Path) -> None:
    """Swap the repository's key file for one with tiny scrypt parameters.

    restic calibrates scrypt to take about half a second, and pays that on every
    run; forty backups would take most of a minute. The key file format is
    restic's documented one (doc/design.rst, "Keys, Encryption and MAC"): scrypt
    derives 64 bytes, 32 for AES-256-CTR and 32 for Poly1305-AES, sealing the
    master keys as IV || ciphertext || MAC. Only this test repository's cost
    changes; restic itself opens it afterwards, which proves the format."""
    (old,) = (repo / "keys").iterdir()
    key = json.loads(old.read_bytes())
    sealed = base64.b64decode(key["data"])
    iv, ciphertext, tag = sealed[:16], sealed[16:-16], sealed[-16:]
    aes, k, r = _derive(key)
    assert _mac(k, r, iv, ciphertext) == tag, "cannot open restic's key file"
    master = Cipher(algorithms.AES(aes), modes.CTR(iv)).decryptor().update(ciphertext)

    cheap = key | {"N": 16, "r": 1, "p": 1, "salt": base64.b64encode(os.urandom(64)).decode()}
    aes, k, r = _derive(cheap)
    iv = os.urandom(16)
    ciphertext = Cipher(algorithms.AES(aes), modes.CTR(iv)).encryptor().update(master)
    cheap["data"] = base64.b64encode(iv + ciphertext + _mac(k, r, iv, ciphertext)).decode()
    raw = json.dumps(cheap).encode()
    (repo / "keys" / hashlib.sha256(raw).hexdigest()).write_bytes(raw)  # named by content
    old.unlink()


def snapshot_times() -> list[str]:
    """About two years of backups, made deterministically: the last three weeks
    mostly daily with gaps and several on some days, sparse ones before, the ISO
    week 53 of 2020 and the new years around it, and two at the same second."""
    rng = random.Random(20220615)
    end = datetime(2022, 6, 15, 18, 0, tzinfo=UTC)
    moments = {end}
    for day in range(21):
        if rng.random() < 0.3:
            continue  # a day without a backup
        for _ in range(rng.choice((1, 1, 2, 3))):
            moments.add(end - timedelta(days=day, minutes=rng.randrange(18 * 60)))
    while len(moments) < 36:
        moments.add(end - timedelta(days=rng.randrange(21, 730), seconds=rng.randrange(86400)))
    for text in ("2020-12-27 23:59:59", "2020-12-31 23:59:59", "2021-01-01 00:00:00"):
        moments.add(at(text))
    times = sorted(moment.strftime("%Y-%m-%d %H:%M:%S") for moment in moments)
    return [*times, "2022-06-10 12:00:00", "2022-06-10 12:00:00"]


@pytest.fixture(scope="module")
def restic_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Restic]:
    binary = shutil.which("restic")
    if binary is None:
        pytest.fail(
            "restic is not installed: install the Debian package 'restic' "
            "(apt-get install restic; `make system-deps` does).",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("restic")
    version_text = subprocess.run(
        [binary, "version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"restic (\d+)\.(\d+)\.(\d+)", version_text)
    assert found, version_text
    restic = Restic(binary, folder, tuple(int(part) for part in found.groups()))
    restic("init")
    _cheapen_key(folder / "repo")
    (folder / "data").mkdir()
    (folder / "data" / "deposit.txt").write_text("escrowed\n")
    # Backups only take a shared lock, so they may run side by side.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(
                lambda time: restic(
                    "backup", "--quiet", "--host", "escrow", "--time", time, "data"
                ),
                snapshot_times(),
            )
        )
    yield restic


def forget_keeps(restic: Restic, keep: Keep) -> Counter[tuple[str, tuple[str, ...]]]:
    """What ``restic forget --dry-run`` keeps: (time as restic prints it, rules)."""
    flags = [arg for rule in RULES for arg in (f"--keep-{rule}", str(keep.count(rule)))]
    (group,) = json.loads(restic("forget", "--dry-run", "--json", *flags))
    assert len(group["keep"]) == len(group["reasons"])
    return Counter(
        (reason["snapshot"]["time"], normalised(reason["matches"])) for reason in group["reasons"]
    )


def normalised(reasons: list[str]) -> tuple[str, ...]:
    # restic says "daily snapshot" (and, from 0.18, "oldest daily snapshot"; 0.17 says
    # only "daily snapshot" for that): compare the rule names.
    return tuple(reason.removesuffix(" snapshot").removeprefix("oldest ") for reason in reasons)


POLICIES = [
    Keep(daily=14, weekly=8, monthly=6, yearly=1),  # the escrow's default
    Keep(weekly=3),
    Keep(daily=2, yearly=5),  # more years than there are: restic >= 0.17 differs here
    Keep(weekly=70, monthly=30),  # every week since before 2020-W53
    Keep(daily=1000),
]


@pytest.mark.parametrize("keep", POLICIES, ids=str)
def test_apply_policy_and_the_command_keep_what_restic_forget_keeps(
    restic_repo: Restic, keep: Keep
) -> None:
    listed = [snapshot["time"] for snapshot in json.loads(restic_repo("snapshots", "--json"))]
    assert len(listed) == len(snapshot_times())
    expected = forget_keeps(restic_repo, keep)

    stamps = parse_timestamps(listed)
    keep_oldest = restic_repo.version >= (0, 17)
    reasons = stamp_reasons(stamps, keep, keep_oldest=keep_oldest)
    ours = Counter(
        (s.text, normalised(list(why))) for s, why in zip(stamps, reasons, strict=True) if why
    )
    assert ours == expected

    # The operator's command, fed the times as restic lists them (restic's default
    # semantics; with restic >= 0.17 compare against keep_oldest=False instead).
    out = run(
        *(f"--keep-{rule}={keep.count(rule)}" for rule in RULES),
        "--explain",
        stdin="\n".join(listed),
    )
    printed = Counter(
        (text, tuple(why.split(", ")))
        for text, why in (line.split("  # ") for line in out.splitlines())
    )
    if keep_oldest:
        reasons = stamp_reasons(stamps, keep)
        expected = Counter((s.text, why) for s, why in zip(stamps, reasons, strict=True) if why)
    assert printed == expected


def test_with_no_rule_restic_forget_removes_nothing_and_neither_do_we(restic_repo: Restic) -> None:
    before = json.loads(restic_repo("snapshots", "--json"))
    restic_repo("forget")  # for real: restic applies no policy at all
    after = json.loads(restic_repo("snapshots", "--json"))
    assert sorted(s["id"] for s in after) == sorted(s["id"] for s in before)
    times = [snapshot["time"] for snapshot in after]
    assert all(stamp_reasons(parse_timestamps(times), Keep()))
