"""Business days as the vendor's law counts them: weekends and the public holidays of
the vendor's country skipped, counted on the vendor's clock. Every expected moment
below is worked out by hand from a calendar, in the comment above it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from escrow.business_days import (
    add_business_days,
    business_days_left,
    is_business_day,
    local_time_text,
    public_holidays,
    zone_of,
)
from tests.factories import OrganisationFactory

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")
ROOT = Path(__file__).resolve().parents[2]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_christmas_and_new_year_are_not_business_days_in_the_netherlands() -> None:
    # Filed Wednesday 23 December 2026, 10:00 in Amsterdam (09:00 UTC), 10 business days:
    # Thu 24 Dec (1); Fri 25 Dec Christmas, skipped; Sat 26 (also Second Day of
    # Christmas) and Sun 27, weekend; Mon 28 (2), Tue 29 (3), Wed 30 (4), Thu 31 (5);
    # Fri 1 Jan New Year, skipped; weekend; Mon 4 (6), Tue 5 (7), Wed 6 (8), Thu 7 (9),
    # Fri 8 January 2027 (10), at 10:00 Amsterdam time: 09:00 UTC (CET, UTC+1).
    filed = datetime(2026, 12, 23, 10, 0, tzinfo=AMSTERDAM)
    deadline = add_business_days(filed, 10, country="NL", time_zone="Europe/Amsterdam")
    assert deadline == utc(2027, 1, 8, 9, 0)
    assert deadline.tzinfo == UTC
    # Weekends alone (the old count) would have ended two business days earlier.
    weekends_only = add_business_days(filed, 10, country="ZZ", time_zone="Europe/Amsterdam")
    assert weekends_only == utc(2027, 1, 6, 9, 0)


def test_germany_skips_the_same_christmas_days() -> None:
    # Germany's nationwide holidays: 25 and 26 December (a Saturday in 2026), 1 January.
    # Same count as above: Friday 8 January 2027, 10:00 in Berlin = 09:00 UTC.
    filed = datetime(2026, 12, 23, 10, 0, tzinfo=BERLIN)
    assert add_business_days(filed, 10, country="DE", time_zone="Europe/Berlin") == utc(
        2027, 1, 8, 9, 0
    )


def test_each_country_skips_its_own_holidays() -> None:
    # Filed Friday 24 April 2026, 10:00 local, 3 business days.
    # Netherlands: Mon 27 April is King's Day, skipped; Tue 28 (1), Wed 29 (2),
    # Thu 30 April (3), 10:00 CEST = 08:00 UTC.
    # Germany: Mon 27 (1), Tue 28 (2), Wed 29 April (3), 10:00 CEST = 08:00 UTC
    # (its Labour Day, Fri 1 May, comes after).
    nl = add_business_days(
        datetime(2026, 4, 24, 10, 0, tzinfo=AMSTERDAM),
        3,
        country="NL",
        time_zone="Europe/Amsterdam",
    )
    de = add_business_days(
        datetime(2026, 4, 24, 10, 0, tzinfo=BERLIN), 3, country="DE", time_zone="Europe/Berlin"
    )
    assert (nl, de) == (utc(2026, 4, 30, 8, 0), utc(2026, 4, 29, 8, 0))


def test_a_us_vendor_does_not_count_thanksgiving() -> None:
    # Filed Wednesday 25 November 2026, 09:00 in New York (14:00 UTC), 10 business days:
    # Thu 26 Thanksgiving, skipped; Fri 27 (1, not a federal holiday); Mon 30 (2),
    # Tue 1 Dec (3), Wed 2 (4), Thu 3 (5), Fri 4 (6), Mon 7 (7), Tue 8 (8), Wed 9 (9),
    # Thu 10 December (10), 09:00 EST (UTC-5) = 14:00 UTC.
    filed = datetime(2026, 11, 25, 9, 0, tzinfo=NEW_YORK)
    assert add_business_days(filed, 10, country="US", time_zone="America/New_York") == utc(
        2026, 12, 10, 14, 0
    )


def test_the_wall_clock_time_holds_across_a_dst_change() -> None:
    # Filed Thursday 26 March 2026, 10:00 CET in Amsterdam (09:00 UTC), 2 business days:
    # Fri 27 (1), Mon 30 March (2). Summer time starts on Sunday 29 March, so Monday
    # 10:00 is CEST (UTC+2): 08:00 UTC, not 09:00.
    filed = datetime(2026, 3, 26, 10, 0, tzinfo=AMSTERDAM)
    assert filed.utcoffset() == timedelta(hours=1)
    deadline = add_business_days(filed, 2, country="NL", time_zone="Europe/Amsterdam")
    assert deadline == utc(2026, 3, 30, 8, 0)
    assert deadline.astimezone(AMSTERDAM).hour == 10
    # And back: filed Friday 23 October 2026, 10:00 CEST (08:00 UTC), 1 business day:
    # Mon 26 October 10:00, after winter time began on Sunday 25: CET, 09:00 UTC.
    autumn = add_business_days(
        datetime(2026, 10, 23, 10, 0, tzinfo=AMSTERDAM), 1, country="NL", time_zone=""
    )
    assert autumn == utc(2026, 10, 26, 9, 0)


def test_a_wall_clock_time_that_a_dst_change_skips_ends_at_the_later_instant() -> None:
    # In Israel summer time starts on Friday 27 March 2026 at 02:00 (clocks jump to
    # 03:00), a business day in this count. Filed Thursday 26 March 02:30 IST (UTC+2,
    # 00:30 UTC), 1 business day ends at "Friday 02:30", which does not exist there:
    # read as IST it is 00:30 UTC (03:30 IDT), read as IDT 23:30 UTC the day before.
    # The later one is kept, so the vendor loses nothing: 00:30 UTC on Friday.
    filed = datetime(2026, 3, 26, 2, 30, tzinfo=ZoneInfo("Asia/Jerusalem"))
    assert filed.astimezone(UTC) == utc(2026, 3, 26, 0, 30)
    assert add_business_days(filed, 1, country="IL", time_zone="Asia/Jerusalem") == utc(
        2026, 3, 27, 0, 30
    )


def test_a_wall_clock_time_that_a_dst_change_repeats_ends_at_the_later_instant() -> None:
    # In Egypt summer time ends at midnight after Thursday 29 October 2026: 23:00 to
    # 24:00 comes twice, first as EEST (UTC+3), then as EET (UTC+2). Filed Wednesday
    # 28 October 23:30 EEST (20:30 UTC), 1 business day ends "Thursday 23:30": 20:30
    # UTC the first time, 21:30 UTC the second. The later one is kept.
    filed = datetime(2026, 10, 28, 23, 30, tzinfo=ZoneInfo("Africa/Cairo"))
    assert filed.astimezone(UTC) == utc(2026, 10, 28, 20, 30)
    assert add_business_days(filed, 1, country="EG", time_zone="Africa/Cairo") == utc(
        2026, 10, 29, 21, 30
    )


def test_a_filing_on_a_weekend_starts_the_count_on_the_next_business_day() -> None:
    # Filed Saturday 12 December 2026, 10:00 in Amsterdam: the count starts Monday
    # 14 December at 00:00. 10 business days: Tue 15 (1), Wed 16 (2), Thu 17 (3),
    # Fri 18 (4), Mon 21 (5), Tue 22 (6), Wed 23 (7), Thu 24 (8); Fri 25 Christmas;
    # Mon 28 (9), Tue 29 December (10), at 00:00 CET = Monday 28 December 23:00 UTC.
    # The vendor so has ten whole business days: all of 14 to 28 December but Christmas.
    filed = datetime(2026, 12, 12, 10, 0, tzinfo=AMSTERDAM)
    assert add_business_days(filed, 10, country="NL", time_zone="Europe/Amsterdam") == utc(
        2026, 12, 28, 23, 0
    )
    # Filed on a public holiday it is the same: Christmas Day, 15:00, 1 business day:
    # the count starts Monday 28 December 00:00; the deadline is Tuesday 29 at 00:00.
    christmas = datetime(2026, 12, 25, 15, 0, tzinfo=AMSTERDAM)
    assert add_business_days(christmas, 1, country="NL", time_zone="Europe/Amsterdam") == utc(
        2026, 12, 28, 23, 0
    )


def test_the_day_is_the_vendor_s_day_not_the_utc_day() -> None:
    # 23:30 on Friday 4 December 2026 in New York is already Saturday 04:30 in UTC. For
    # the vendor it is still Friday, a business day: 1 business day later is Monday
    # 7 December 23:30 EST = Tuesday 8 December 04:30 UTC. (Counted in UTC, the filing
    # would fall on a Saturday and the vendor would lose its Monday.)
    friday_night = datetime(2026, 12, 4, 23, 30, tzinfo=NEW_YORK)
    assert friday_night.astimezone(UTC).weekday() == 5  # Saturday in UTC
    assert add_business_days(friday_night, 1, country="US", time_zone="America/New_York") == utc(
        2026, 12, 8, 4, 30
    )
    # The other way round: 11:30 UTC on Friday 4 December is already Saturday 00:30 in
    # Auckland (NZDT, UTC+13): the count starts Monday 7 December 00:00 there, and
    # 1 business day ends Tuesday 8 December 00:00 NZDT = Monday 7 December 11:00 UTC.
    friday_utc = utc(2026, 12, 4, 11, 30)
    assert friday_utc.astimezone(AUCKLAND).weekday() == 5
    assert add_business_days(friday_utc, 1, country="NZ", time_zone="Pacific/Auckland") == utc(
        2026, 12, 7, 11, 0
    )


def test_an_unknown_country_counts_weekends_only_and_says_so(caplog) -> None:
    public_holidays.cache_clear()
    assert public_holidays("ZZ", 2026) == frozenset()
    assert "no public holiday calendar for country 'ZZ'" in caplog.text
    assert is_business_day(datetime(2026, 12, 25).date(), country="ZZ")
    assert not is_business_day(datetime(2026, 12, 25).date(), country="NL")
    assert not is_business_day(datetime(2026, 12, 26).date(), country="ZZ")  # a Saturday


def test_zero_days_is_the_start_itself_and_a_naive_start_is_refused() -> None:
    start = utc(2026, 12, 25, 10, 0)
    assert add_business_days(start, 0, country="NL", time_zone="") == start
    with pytest.raises(ValueError, match="needs an aware datetime"):
        add_business_days(datetime(2026, 12, 23, 10, 0), 1, country="NL", time_zone="")


def test_blank_means_the_configured_default_and_an_unknown_zone_is_refused(settings) -> None:
    settings.ESCROW_DEFAULT_VENDOR_TIME_ZONE = "America/New_York"
    assert zone_of("").key == "America/New_York"
    assert zone_of("Europe/Berlin").key == "Europe/Berlin"
    for hostile in ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/Amsterdam\x00"]:
        with pytest.raises(ValueError, match="is not a known time zone"):
            zone_of(hostile)


def test_the_deadline_is_shown_on_the_vendor_s_clock_with_the_zone_name() -> None:
    assert (
        local_time_text(utc(2027, 1, 8, 9, 0), time_zone="Europe/Amsterdam")
        == "Friday 8 January 2027, 10:00 CET (Europe/Amsterdam)"
    )
    assert (
        local_time_text(utc(2026, 12, 10, 14, 0), time_zone="America/New_York")
        == "Thursday 10 December 2026, 09:00 EST (America/New_York)"
    )


def test_what_is_left_is_whole_business_days_then_real_time() -> None:
    deadline = utc(2027, 1, 8, 9, 0)  # Friday 8 January 2027, 10:00 Amsterdam
    # At the filing moment all ten business days are left.
    filed = utc(2026, 12, 23, 9, 0)
    assert business_days_left(filed, deadline, country="NL", time_zone="") == (10, timedelta(0))
    # Four hours later: nine whole business days (to Thursday 7 January 14:00), then 20 hours.
    assert business_days_left(filed + timedelta(hours=4), deadline, country="NL", time_zone="") == (
        9,
        timedelta(hours=20),
    )
    # Over the weekend before the deadline: from Saturday 2 January 12:00 the count
    # starts Monday 4 January 00:00, so Monday to Thursday are four whole business days
    # (to Friday 00:00), then 10 hours of Friday until 10:00.
    saturday = datetime(2027, 1, 2, 12, 0, tzinfo=AMSTERDAM)
    assert business_days_left(saturday, deadline, country="NL", time_zone="") == (
        4,
        timedelta(hours=10),
    )
    assert business_days_left(deadline, deadline, country="NL", time_zone="") == (0, timedelta(0))


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "../../../etc/localtime", "x" * 64])
def test_an_organisation_s_time_zone_must_be_a_known_iana_name(db, name) -> None:
    vendor = OrganisationFactory(name="Acme Software B.V.", kind="vendor", time_zone="")
    vendor.time_zone = name
    with pytest.raises(ValidationError) as refused:
        vendor.full_clean()
    assert refused.value.message_dict["time_zone"] == [
        f"{name} is not a known time zone; use an IANA name such as Europe/Amsterdam."
    ]
    vendor.time_zone = "America/New_York"
    vendor.full_clean()
    assert vendor.effective_time_zone == "America/New_York"


def test_a_blank_time_zone_is_the_configured_default(db, settings) -> None:
    settings.ESCROW_DEFAULT_VENDOR_TIME_ZONE = "Europe/Berlin"
    vendor = OrganisationFactory(name="Acme Software B.V.", kind="vendor", time_zone="")
    assert vendor.effective_time_zone == "Europe/Berlin"


def test_a_bad_default_time_zone_stops_start_up_naming_it(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ESCROW_"))}
    env |= {
        "ESCROW_VAR_DIR": str(tmp_path),
        "ESCROW_DEFAULT_VENDOR_TIME_ZONE": "Europe/Atlantis",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ESCROW_DEFAULT_VENDOR_TIME_ZONE='Europe/Atlantis' is not a known" in result.stderr
