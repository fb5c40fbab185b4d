"""Backup retention with exactly the semantics of restic's ``forget --keep-daily N
--keep-weekly N --keep-monthly N --keep-yearly N`` (pure Python, no Django).

The rule, as restic's ``ApplyPolicy`` (internal/restic/snapshot_policy.go) applies it:

* Backups are walked newest first. Equal timestamps keep their input order (restic
  uses ``sort.Stable``), so of two backups made at the same instant the one given
  first is the one a rule keeps.
* Each rule has a counter (its N) and the bucket value of the last backup it kept:
  day ``YYYYMMDD``, ISO week ``YYYYWW`` (ISO year, so 2021-01-03 is in 2020-W53),
  month ``YYYYMM``, year ``YYYY``. A backup is kept by a rule when the rule still has
  count left and the backup's bucket differs from that last *kept* bucket; the
  counter then drops by one. restic only records the bucket when it keeps, but as
  the walk is sorted and every bucket value only decreases with time, this is the
  same as "the newest backup of each of the rule's N most recent buckets that have
  a backup".
* A backup is kept if any rule keeps it; its reasons name every rule that did.
* An empty policy (every N zero) keeps everything: restic's ``ApplyPolicy`` marks
  every snapshot "policy is empty" and ``restic forget`` removes nothing.

Where this differs from restic, deliberately:

* Buckets are computed in UTC. restic uses each snapshot's recorded local time; the
  escrow's timestamps are UTC, and restic run with ``TZ=UTC`` agrees.
* No "unlimited": N must be a non-negative integer. restic 0.14 (Debian bookworm)
  silently treats a negative N as "keep none for that rule" -- with ``--keep-daily
  -1`` alone it forgets *every* snapshot; restic >= 0.16 spells unlimited
  ``unlimited`` (internally -1). A large N does the same job here.
* restic >= 0.17 additionally keeps the oldest snapshot when a rule still has count
  left at the end of the walk (restic PR #4366). That is off by default, matching
  the restic the project installs (0.14); ``keep_oldest=True`` turns it on, and
  the reason is then ``"oldest <rule>"`` (as restic >= 0.18 labels it).
* Only daily/weekly/monthly/yearly: no ``--keep-last``, hourly, within or tags.

The policy never deletes anything itself. The caller's rules stay the caller's:
pass only *successful* backups, never prune the newest successful one whatever its
clock said (the policy keeps the newest *timestamp*, which after a clock jump may
be another backup), never touch a vault site, and do not prune after a failed run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

RULES: tuple[str, ...] = ("daily", "weekly", "monthly", "yearly")
"""The rules, in the order restic evaluates and reports them."""

EMPTY_POLICY = "policy is empty"
"""The reason given for every backup when no rule has N >= 1 (restic's wording)."""


def _day(moment: datetime) -> int:
    return moment.year * 10000 + moment.month * 100 + moment.day


def _week(moment: datetime) -> int:
    # The ISO year, not the calendar year: 2019-12-30 is 2020-W01 and 2021-01-03 is
    # 2020-W53, as with Go's time.ISOWeek that restic uses.
    year, week, _ = moment.isocalendar()
    return year * 100 + week


def _month(moment: datetime) -> int:
    return moment.year * 100 + moment.month


def _year(moment: datetime) -> int:
    return moment.year


BUCKETS: dict[str, Callable[[datetime], int]] = {
    "daily": _day,
    "weekly": _week,
    "monthly": _month,
    "yearly": _year,
}
"""The bucket value of a UTC moment for each rule."""


@dataclass(frozen=True, slots=True)
class Keep:
    """How many days, ISO weeks, months and years to keep a backup for (each >= 0;
    0 turns the rule off). The defaults are restic's: all rules off."""

    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            # bool is an int in Python; "keep True daily" is surely a mistake.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"keep {field.name} must be an integer >= 0, not {value!r}")

    def count(self, rule: str) -> int:
        """N for one of RULES."""
        value: int = getattr(self, rule)
        return value

    @property
    def is_empty(self) -> bool:
        """No rule is on: restic then keeps everything."""
        return not any(self.count(rule) for rule in RULES)


def _as_utc(moment: datetime, position: int) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp #{position} ({moment.isoformat()}) has no time zone")
    return moment.astimezone(UTC)


def keep_reasons(
    timestamps: Sequence[datetime], keep: Keep, *, keep_oldest: bool = False
) -> list[tuple[str, ...]]:
    """For each timestamp, in input order, the rules that keep it; ``()`` means the
    policy lets it go. Unlike :func:`apply_policy` this tells equal timestamps
    apart: of several backups at the same instant only the first given is kept.

    Timestamps must be time-zone aware; buckets are computed in UTC."""
    moments = [_as_utc(moment, position) for position, moment in enumerate(timestamps)]
    if keep.is_empty:
        return [(EMPTY_POLICY,)] * len(moments)
    # Newest first; sorted() stays stable with reverse=True, like restic's sort.Stable.
    newest_first = sorted(range(len(moments)), key=moments.__getitem__, reverse=True)
    oldest = newest_first[-1] if newest_first else None
    left = {rule: keep.count(rule) for rule in RULES}
    # restic starts every rule's "last" at -1, a value no bucket can have.
    last: dict[str, int | None] = dict.fromkeys(RULES)
    reasons: list[tuple[str, ...]] = [()] * len(moments)
    for position in newest_first:
        matched: list[str] = []
        for rule in RULES:
            if left[rule] == 0:  # out of count (or off): restic skips the rule entirely
                continue
            bucket = BUCKETS[rule](moments[position])
            if bucket != last[rule]:
                matched.append(rule)
            elif keep_oldest and position == oldest:
                # restic >= 0.17: the oldest snapshot is kept while the rule has count
                # left, even in a bucket the rule already kept, and uses up a count.
                matched.append(f"oldest {rule}")
            else:
                continue
            # Only a keep moves "last" and the counter, exactly as in restic.
            last[rule] = bucket
            left[rule] -= 1
        reasons[position] = tuple(matched)
    return reasons


def apply_policy(
    timestamps: Sequence[datetime], keep: Keep, *, keep_oldest: bool = False
) -> dict[datetime, list[str]]:
    """Every kept timestamp (the objects given, as keys) with the rules that keep it,
    e.g. ``["daily", "weekly"]``; a timestamp not in the result may be pruned.

    Equal timestamps are one key: if one backup at that instant is kept, the key is
    present, so a caller looking its backups up by timestamp keeps all of them --
    the safe side. Use :func:`keep_reasons` to tell them apart.

    Not enforced here, the caller's duty: never prune the newest *successful* backup
    (the one made last, whatever its clock said), pass no failed backups, and prune
    nothing after a failed run or in a vault site."""
    kept: dict[datetime, list[str]] = {}
    for moment, reasons in zip(
        timestamps, keep_reasons(timestamps, keep, keep_oldest=keep_oldest), strict=True
    ):
        if reasons:
            merged = kept.setdefault(moment, [])
            merged.extend(reason for reason in reasons if reason not in merged)
    return kept


# --- Reading timestamps (for the backup_policy command) ------------------------------

# RFC 3339 profile of ISO 8601: date, time with seconds, optional fraction, and an
# explicit zone. re.ASCII so that \d is 0-9 only (no other scripts' digits).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_UTC_OFFSETS = {"Z", "z", "+00:00", "-00:00"}
_SHOWN = 60  # how much of a bad line an error message quotes


@dataclass(frozen=True, slots=True)
class Stamp:
    """A timestamp read from a line: its line number, its text exactly as given
    (without surrounding whitespace), the UTC moment (to the microsecond), and the
    nanoseconds below that, which only order backups within one microsecond."""

    line: int
    text: str
    when: datetime
    nanos: int = 0


class TimestampError(ValueError):
    """Lines that are not UTC timestamps; ``problems`` lists (line number, message)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = [f"line {line}: {message}" for line, message in problems[:10]]
        if len(problems) > 10:
            shown.append(f"... and {len(problems) - 10} more bad lines")
        super().__init__("\n".join(shown))


def parse_timestamp(text: str) -> tuple[datetime, int]:
    """One ISO-8601 UTC timestamp such as ``2024-05-01T02:00:00Z`` (also ``+00:00``,
    a space for the ``T``, and up to nine fraction digits, as ``restic snapshots
    --json`` prints them): the aware UTC datetime and the nanoseconds beyond its
    microseconds. A value without a zone is refused, not guessed to be UTC, and so
    is any other offset: the policy's days are UTC days. Raises ValueError."""
    shown = repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"{shown} is not an ISO-8601 timestamp like 2024-05-01T02:00:00Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone is None:
        raise ValueError(f"{shown} has no time zone; write it in UTC with a Z suffix")
    if zone not in _UTC_OFFSETS:
        raise ValueError(f"{shown} is not in UTC (offset {zone}); write it with a Z suffix")
    digits = (fraction or "").ljust(9, "0")
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(digits[:6]),
            tzinfo=UTC,
        )
    except ValueError as error:  # 2023-02-29, 25:00, a leap second, year 0000
        raise ValueError(f"{shown} is not a valid date and time ({error})") from None
    return moment, int(digits[6:])


def parse_timestamps(lines: Iterable[str]) -> list[Stamp]:
    """The timestamps of ``lines``, one per line; blank lines are skipped (but counted
    for line numbers). Raises TimestampError naming every bad line."""
    stamps: list[Stamp] = []
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            when, nanos = parse_timestamp(text)
        except ValueError as error:
            problems.append((number, str(error)))
            continue
        stamps.append(Stamp(line=number, text=text, when=when, nanos=nanos))
    if problems:
        raise TimestampError(problems)
    return stamps


def stamp_reasons(
    stamps: Sequence[Stamp], keep: Keep, *, keep_oldest: bool = False
) -> list[tuple[str, ...]]:
    """:func:`keep_reasons` for parsed stamps, in their order, honouring nanoseconds:
    restic orders snapshots to the nanosecond, a datetime only to the microsecond."""
    # Hand keep_reasons the stamps already newest first to the nanosecond; its own
    # stable sort on the microsecond then leaves that order alone.
    order = sorted(
        range(len(stamps)), key=lambda i: (stamps[i].when, stamps[i].nanos), reverse=True
    )
    ordered = keep_reasons([stamps[i].when for i in order], keep, keep_oldest=keep_oldest)
    reasons: list[tuple[str, ...]] = [()] * len(stamps)
    for rank, index in enumerate(order):
        reasons[index] = ordered[rank]
    return reasons
