"""Shifting DICOM dates and times by a per-patient offset, so that every interval survives.

A patient's offset is ``-(days * 86400 + seconds)`` with ``days`` in 365..3652 and ``seconds`` in
1..86399, both from a keyed hash (see :meth:`Deidentifier.date_offset`). A date with its time
(``StudyDate`` with ``StudyTime``) or a DT with hours moves by the whole offset, so it may land a
day earlier than ``days`` alone would put it; a date without a time moves by ``days``; a time
without a date moves by ``seconds`` around the clock.

Times are read in the timezone they state (a DT's ``&ZZXX`` suffix, else the data set's
TimezoneOffsetFromUTC) and written in UTC, so the zone, which tells a region, is replaced by
``+0000`` and intervals between files of different zones (or either side of a summer-time change)
stay exact. Every function returns None for a value it cannot read: the caller removes it.
"""

import datetime
import re

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_DT = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$")
_TZ = re.compile(r"^([+-])(\d{2})(\d{2})$")
UTC = "+0000"
_US = 1_000_000  # microseconds in a second: clocks are kept in integers, so no rounding
_DAY = 86400 * _US


def parse_tz(text):
    """``'+0100'`` -> 3600 (seconds east of UTC); None if absent or malformed."""
    m = _TZ.match(str(text or "").strip())
    if not m or int(m.group(2)) > 14 or int(m.group(3)) > 59:
        return None
    seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60
    return -seconds if m.group(1) == "-" else seconds


def _date(text):
    # ACR-NEMA wrote dates as YYYY.MM.DD.
    m = _DA.match(str(text).strip().replace(".", ""))
    if not m:
        return None
    try:
        return datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _clock(text):
    """A TM as (microseconds since midnight, fraction digits or ''); None if unreadable."""
    m = _TM.match(str(text).strip().replace(":", ""))
    if not m:
        return None
    h, mi, s = int(m.group(1)), int(m.group(2) or 0), min(int(m.group(3) or 0), 59)  # 60: a leap second
    if h > 23 or mi > 59:
        return None
    fraction = m.group(4) or ""
    return (h * 3600 + mi * 60 + s) * _US + int(fraction.ljust(6, "0") or 0), fraction


def _tm_text(micro, fraction):
    whole = micro // _US
    text = f"{whole // 3600:02d}{whole % 3600 // 60:02d}{whole % 60:02d}"
    return text + ("." + f"{micro % _US:06d}"[:len(fraction)] if fraction else "")


def _dt_text(moment, fraction):
    text = moment.strftime("%Y%m%d%H%M%S") if moment.year >= 1000 else None
    if text and fraction:
        text += "." + f"{moment.microsecond:06d}"[:len(fraction)]
    return text


def shift_date(text, days):
    """A DA without its time moved by ``days``."""
    day = _date(text)
    try:
        moved = day + datetime.timedelta(days=days) if day else None
    except OverflowError:
        return None
    return moved.strftime("%Y%m%d") if moved and moved.year >= 1000 else None


def shift_time(text, seconds, tz):
    """A TM without its date moved by ``seconds`` (and from zone ``tz`` to UTC) around the clock."""
    read = _clock(text)
    if read is None:
        return None
    clock, fraction = read
    return _tm_text((clock + (seconds - tz) * _US) % _DAY, fraction)


def shift_pair(date_text, time_text, seconds, tz):
    """A DA and its TM moved together by ``seconds``; ``(DA, TM)`` or None."""
    day, read = _date(date_text), _clock(time_text)
    if day is None or read is None:
        return None
    clock, fraction = read
    try:
        moment = datetime.datetime(day.year, day.month, day.day) + datetime.timedelta(
            microseconds=clock + (seconds - tz) * _US)
    except OverflowError:
        return None
    if moment.year < 1000:
        return None
    micro = ((moment.hour * 60 + moment.minute) * 60 + moment.second) * _US + moment.microsecond
    return moment.strftime("%Y%m%d"), _tm_text(micro, fraction)


def shift_datetime(text, days, seconds, tz):
    """A DT moved: by ``days`` if it holds a date only, else by ``seconds`` and written in UTC.

    Its own ``&ZZXX`` suffix, when present, overrides ``tz`` and becomes ``+0000``.
    """
    m = _DT.match(str(text).strip())
    if not m:
        return None
    suffix = m.group(8)
    zone = parse_tz(suffix) if suffix else tz
    if suffix and zone is None:
        return None
    if m.group(4) is None:  # a date only: no clock to move
        moved = shift_date(m.group(1) + m.group(2) + m.group(3), days)
        return moved and moved + (UTC if suffix else "")
    fraction = m.group(7) or ""
    try:
        moment = datetime.datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)),
                                   int(m.group(5) or 0), min(int(m.group(6) or 0), 59),
                                   int(fraction.ljust(6, "0")) if fraction else 0)
        moment += datetime.timedelta(seconds=seconds - zone)
    except (ValueError, OverflowError):
        return None
    out = _dt_text(moment, fraction)
    return out and out + (UTC if suffix else "")


def _shift_value(text, vr, days, seconds, tz):
    if vr == "DA":
        return shift_date(text, days)
    if vr == "TM":
        return shift_time(text, seconds, tz)
    return shift_datetime(text, days, seconds, tz)


def shift_item(elems, days, seconds, tz):
    """Move the dates and times of one data set or item, a date and its time together.

    Parameters
    ----------
    elems : list of pydicom.DataElement
        The DA, DT and TM elements of one item to move (and TimezoneOffsetFromUTC); changed in place.
    days, seconds : int
        The patient's offset: whole days for a date alone, seconds for everything with a clock.
    tz : int
        The item's timezone offset in seconds east of UTC (0 when unknown).

    Returns
    -------
    list of (pydicom.DataElement, str)
        Each changed element and ``'shifted'``, or ``'removed'`` when it could not be read (emptied).
    """
    by_keyword = {e.keyword: e for e in elems}
    done = []
    for elem in elems:
        # StudyDate and StudyTime, DateOfLastCalibration and TimeOfLastCalibration, Date and Time...
        partner = by_keyword.get(elem.keyword.replace("Date", "Time")) if elem.VR == "DA" else None
        if (partner is None or partner.VR != "TM" or elem.VM != 1 or partner.VM != 1
                or elem.is_empty or partner.is_empty):
            continue
        moved = shift_pair(elem.value, partner.value, seconds, tz)
        if moved:
            elem.value, partner.value = moved
            done += [(elem, "shifted"), (partner, "shifted")]
    paired = {id(e) for e, _ in done}
    for elem in elems:
        if id(elem) in paired or elem.is_empty:
            continue
        if elem.keyword == "TimezoneOffsetFromUTC":
            # Every time was converted to UTC, so the zone (which tells a region) is too.
            elem.value = UTC
            done.append((elem, "shifted"))
            continue
        multi = not isinstance(elem.value, str)
        new = [_shift_value(str(v), elem.VR, days, seconds, tz) for v in (elem.value if multi else [elem.value])]
        if any(v is None for v in new):
            elem.clear()  # an unreadable or partial date cannot be shifted, so it goes
            done.append((elem, "removed"))
            continue
        elem.value = new if multi else new[0]
        done.append((elem, "shifted"))
    return done
