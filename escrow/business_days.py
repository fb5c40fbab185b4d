"""Business days as the vendor's own law counts them: Monday to Friday, less the
public holidays of the vendor's country, in the vendor's time zone.

A contest period is a legal period given to the vendor, so it is counted where the
vendor is: Christmas in Amsterdam is not a business day, and 23:30 on a Friday in
New York is still Friday there although it is Saturday in UTC. Where a rule could go
either way (a filing on a holiday, a wall-clock time that a DST change makes
ambiguous), it goes the vendor's way: the period never ends earlier than the law
would end it."""

from __future__ import annotations

import functools
import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The public holidays of ``country`` (ISO 3166-1 alpha-2) in ``year``, as the
    ``holidays`` package knows them (nationwide ones; observed days included).

    A country the package does not know has none here: only weekends then count as
    non-business days. That errs against the vendor, so it is logged."""
    import holidays  # 2 MiB of calendars: loaded by the first contest period, not every worker

    try:
        calendar = holidays.country_holidays(country.upper(), years=year)
    except NotImplementedError:
        logger.warning("no public holiday calendar for country %r: weekends only", country)
        return frozenset()
    return frozenset(calendar.keys())


def is_business_day(day: date, *, country: str) -> bool:
    """Monday to Friday and not a public holiday of ``country``."""
    return day.weekday() < 5 and day not in public_holidays(country, day.year)


def zone_of(time_zone: str) -> ZoneInfo:
    """The IANA time zone named ``time_zone``, or ESCROW_DEFAULT_VENDOR_TIME_ZONE when it
    is blank. An unknown name is refused (``ValueError``) rather than guessed."""
    name = time_zone or settings.ESCROW_DEFAULT_VENDOR_TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"{name!r} is not a known time zone (IANA name, e.g. Europe/Amsterdam)."
        ) from error


def _at_local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """``day`` at wall-clock ``wall`` in ``zone``, as an aware UTC datetime. A wall time
    that a DST change skips or repeats is read both ways and the later instant kept."""
    readings = [datetime.combine(day, wall, tzinfo=zone).replace(fold=fold) for fold in (0, 1)]
    return max(reading.astimezone(UTC) for reading in readings)


def add_business_days(start: datetime, days: int, *, country: str, time_zone: str) -> datetime:
    """The moment ``days`` business days after ``start``, at the same wall-clock time in
    the vendor's time zone, as an aware UTC datetime.

    Business days are counted on the vendor's calendar (``country``) and clock
    (``time_zone``; blank is ESCROW_DEFAULT_VENDOR_TIME_ZONE). Filed on a weekend or a
    public holiday, the count starts at the beginning (00:00 local) of the next business
    day, so the vendor gets ``days`` whole business days. The local date is what counts,
    so a DST change only moves the UTC hour, never the wall-clock time."""
    if start.tzinfo is None:
        raise ValueError("add_business_days needs an aware datetime.")
    zone = zone_of(time_zone)
    local = start.astimezone(zone)
    day, wall = local.date(), local.time().replace(tzinfo=None)
    if days <= 0:
        return start.astimezone(UTC)
    if not is_business_day(day, country=country):
        while not is_business_day(day, country=country):
            day += timedelta(days=1)
        wall = time(0, 0)
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_business_day(day, country=country):
            remaining -= 1
    return _at_local(day, wall, zone)


def business_days_left(
    now: datetime, deadline: datetime, *, country: str, time_zone: str
) -> tuple[int, timedelta]:
    """What is left of a period until ``deadline``: the whole business days (as
    ``add_business_days`` counts them from ``now``) and the real time after them.
    ``(0, timedelta(0))`` once the deadline has passed."""
    if deadline <= now:
        return 0, timedelta(0)
    days = 0
    while add_business_days(now, days + 1, country=country, time_zone=time_zone) <= deadline:
        days += 1
    reached = add_business_days(now, days, country=country, time_zone=time_zone)
    return days, deadline - max(reached, now)


def local_time_text(moment: datetime, *, time_zone: str) -> str:
    """``moment`` on the vendor's clock, naming the zone: "Friday 8 January 2027, 10:00
    CET (Europe/Amsterdam)". Every page and e-mail shows a contest deadline this way,
    so nobody has to convert from UTC."""
    zone = zone_of(time_zone)
    local = moment.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()} ({zone.key})"
