"""What a value becomes under the profile's D (dummy) and C (clean) actions.

``D`` writes a fixed value of the right VR that says nothing about anyone. ``C`` on free text
(descriptors, kept only when the user asks) removes every word of the data set's own identifying
values, every date-like pattern and every run of four or more digits; text may still name a
person or a place that the file holds nowhere else, so a cleaned value is always flagged for review.
"""

import re
from collections.abc import MutableSequence

DUMMY_NAME = "ANONYMOUS"
DUMMY_TEXT = "ANONYMIZED"
DUMMY_URI = "https://anonymized.invalid/"  # .invalid is reserved (RFC 2606): it names no host
DUMMY_DATE, DUMMY_TIME = "19000101", "000000"
REDACTED = "***"

TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC"})
NUMBER_VRS = frozenset({"DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"})
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
# Every digit run of four or more (IDs, years, phone numbers) and dates written with separators.
_PATTERNS = r"\d{4,}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}"
_WORD = re.compile(r"[^\W_]{3,}")


def dummy_value(vr):
    """A non-empty value of VR ``vr`` that identifies nobody (SQ, UI and AS are the caller's)."""
    if vr == "PN":
        return DUMMY_NAME
    if vr == "DA":
        return DUMMY_DATE
    if vr == "TM":
        return DUMMY_TIME
    if vr == "DT":
        return DUMMY_DATE + DUMMY_TIME
    if vr == "AS":
        return "000D"
    if vr == "UR":
        return DUMMY_URI
    if vr in ("DS", "IS"):
        return "0"
    if vr in NUMBER_VRS:
        return 0
    if vr in BINARY_VRS:
        return b"\0" * 8  # a multiple of every binary VR's unit (2, 4 or 8 bytes)
    return DUMMY_TEXT  # LO, SH, ST, LT, UT, UC, CS, AE


def _texts(value):
    """A value (str, PersonName, or several of them) as a list of str."""
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")]
    if isinstance(value, (list, tuple, MutableSequence)) and not isinstance(value, str):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def identifier_pattern(values):
    """A case-insensitive regex matching any identifying string in ``values`` and the generic patterns.

    Parameters
    ----------
    values : iterable of str
        Original values of the attributes the profile removes or replaces (names, IDs, places...).
    """
    words = set()
    for value in values:
        for text in _texts(value):
            text = text.replace("^", " ").replace("=", " ")
            words.update(w.lower() for w in _WORD.findall(text) if not w.isdigit())
            if len(text.strip()) >= 3:
                words.add(text.strip().lower())
    alternatives = [re.escape(w) for w in sorted(words, key=len, reverse=True)]
    # Word boundaries only where the needle starts or ends with a word character.
    wrapped = [rf"(?<!\w){a}(?!\w)" for a in alternatives]
    return re.compile("|".join([*wrapped, _PATTERNS]), re.IGNORECASE)


def clean_text(value, pattern):
    """``value`` (str or list of str) with every match of ``pattern`` replaced by ``***``.

    Matches are at least three characters long, so no value grows past its VR's length limit.
    """
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    return [pattern.sub(REDACTED, str(v)) for v in value]
