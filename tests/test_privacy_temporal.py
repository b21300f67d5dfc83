"""Shifted dates and times keep every interval exactly, whatever the clock, zone or precision."""

import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn.privacy import temporal

MOMENTS = st.datetimes(min_value=datetime.datetime(1950, 1, 1), max_value=datetime.datetime(2040, 12, 31))
ZONES = st.integers(-12 * 60, 14 * 60).map(lambda minutes: minutes * 60)
OFFSETS = st.tuples(st.integers(365, 3652), st.integers(1, 86399)).map(lambda ds: -(ds[0] * 86400 + ds[1]))


def _zone_text(seconds):
    sign = "-" if seconds < 0 else "+"
    return f"{sign}{abs(seconds) // 3600:02d}{abs(seconds) % 3600 // 60:02d}"


@settings(derandomize=True)
@given(MOMENTS, MOMENTS, ZONES, ZONES, OFFSETS)
def test_pairs_and_datetimes_keep_utc_intervals_to_the_microsecond(a, b, zone_a, zone_b, offset):
    # a is a DA+TM pair read in zone_a (the data set's TimezoneOffsetFromUTC), b a DT with its own suffix.
    da, tm = temporal.shift_pair(a.strftime("%Y%m%d"), a.strftime("%H%M%S.%f"), offset, zone_a)
    dt = temporal.shift_datetime(b.strftime("%Y%m%d%H%M%S.%f") + _zone_text(zone_b), 0, offset, 0)
    assert dt.endswith("+0000")  # the zone, which tells a region, is gone
    new_a = datetime.datetime.strptime(da + tm, "%Y%m%d%H%M%S.%f")
    new_b = datetime.datetime.strptime(dt[:-5], "%Y%m%d%H%M%S.%f")
    utc_a = a - datetime.timedelta(seconds=zone_a)
    utc_b = b - datetime.timedelta(seconds=zone_b)
    assert new_b - new_a == utc_b - utc_a
    assert new_a - utc_a == datetime.timedelta(seconds=offset)


@settings(derandomize=True)
@given(MOMENTS, OFFSETS)
def test_a_time_alone_moves_around_the_clock_and_a_date_alone_by_whole_days(a, offset):
    days = -((-offset) // 86400)
    assert temporal.shift_date(a.strftime("%Y%m%d"), days) == (a + datetime.timedelta(days=days)).strftime("%Y%m%d")
    moved = temporal.shift_time(a.strftime("%H%M%S"), offset, 0)
    assert moved == (a + datetime.timedelta(seconds=offset)).strftime("%H%M%S") != a.strftime("%H%M%S")


def test_precision_is_kept_or_completed_and_bad_values_are_refused():
    assert temporal.shift_time("0930", 60, 0) == "093100"  # minutes only: seconds added, exact
    assert temporal.shift_time("235959.25", 1, 0) == "000000.25"
    assert temporal.shift_time("09:30:15", 0, 3600) == "083015"  # ACR-NEMA colons, zone +0100 to UTC
    assert temporal.shift_pair("20200101", "003000", -3600, 0) == ("20191231", "233000")
    assert temporal.shift_datetime("20200110", -3, -999, 0) == "20200107"  # no clock: whole days
    assert temporal.shift_date("2020.01.10", -365) == "20190110"
    for bad in ("2020", "20201340", "", "1pm"):
        assert temporal.shift_date(bad, -1) is None and temporal.shift_datetime(bad, -1, -1, 0) is None
    assert temporal.shift_time("2575", 1, 0) is None
    assert temporal.shift_datetime("20200110093000+9999", 0, 1, 0) is None
    assert temporal.parse_tz("-0530") == -19800 and temporal.parse_tz("UTC") is None
