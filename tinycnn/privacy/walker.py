"""One data set through the confidentiality profile: keyed pseudonyms, UIDs and date offsets, and the walk.

Every attribute, at any depth of nesting, gets the action of PS3.15 Table E.1-1 under the declared
options (:mod:`.profile`); attributes the table does not list follow tinycnn's rules in
:meth:`Deidentifier._generic`. Private attributes, unknown ones, group lengths, curves and overlays
are removed before any lookup.
"""

import copy
import hashlib
import hmac
import os
import secrets
import warnings

from ..errors import ConfigError
from . import profile, temporal
from .record import BurnedInRejected, DeidLog, flag_images, note_warnings, read_dicom
from .values import DUMMY_NAME, NUMBER_VRS, TEXT_VRS, clean_text, dummy_value, identifier_pattern

DATE_POLICIES = ("shift", "remove")
KEEP_POLICIES = ("keep", "remove")
# Shifting back 1 to 10 years moves every study out of any window an attacker could know,
# and a nonzero minimum guarantees that no date is left as it was.
_OFFSET_RANGE = (365, 3652)
_DICOM_ROOT = "1.2.840.10008."  # UIDs under the standard's root name classes, never instances
_TEMPORAL = ("DA", "DT", "TM")
# Free text the table does not list: removed, or kept and cleaned when descriptors are kept.
_FREE_TEXT = ("LT", "ST", "UT")
# Values of attributes the profile removes or replaces: the words that cleaning looks for
# (dates and long numbers are found by pattern).
_IDENTIFYING = ("X", "Z", "D", "U", "U*")
_WORDY = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "AE"})


def load_pydicom():
    """Import pydicom on first use, so the rest of tinycnn works without it."""
    try:
        import pydicom
    except ImportError as exc:
        raise ImportError(
            "tinycnn.privacy needs pydicom to read and write DICOM files: pip install tinycnn[dicom]"
        ) from exc
    return pydicom


def _as_key(key):
    if key is None:
        return secrets.token_bytes(32), True
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise ConfigError(f"key must be bytes, str or None, got {type(key).__name__}")
    if not key:
        raise ConfigError("key must not be empty (pass None for a random one)")
    return bytes(key), False


def _check_choice(value, name, choices):
    if value not in choices:
        raise ConfigError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be a bool, got {value!r}")
    return value


def _tag_name(elem):
    return elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"


def _values(value):
    """An element value as a list of its values, and whether it was multi-valued."""
    if isinstance(value, (str, bytes)) or value is None:
        return [value], False
    return list(value), True


class Deidentifier:
    """Holds a key and the policies, so every file of a folder is de-identified consistently.

    Parameters
    ----------
    key : bytes, str or None
        Secret for the pseudonyms, date offsets and UIDs; keep it away from the shared data.
        ``None`` draws 32 random bytes: the output then matches only files de-identified by this
        same instance.
    date_policy : {'shift', 'remove'}
        ``'shift'`` applies the *Retain Longitudinal Temporal Information with Modified Dates*
        option: every date and time the table lists (but the birth date and time) moves by one
        per-patient offset of whole days plus seconds, so intervals survive; timezones become UTC.
        ``'remove'``: the Basic Profile's action for each (removed, emptied or a dummy).
    age_policy, sex_policy : {'keep', 'remove'}
        While either is ``'keep'`` the *Retain Patient Characteristics* option applies (age, sex,
        size, weight, ethnic group, smoking and pregnancy status kept); ``'remove'`` gives
        PatientAge / PatientSex (and PatientSexNeutered) their Basic Profile action.
    keep_descriptors : bool
        Apply the *Clean Descriptors* option: the free-text descriptions it lists
        (StudyDescription, SeriesDescription, ProtocolName, comments...) are kept, cleaned of the
        data set's own identifiers, dates and numbers, and flagged for review. Free text the
        table does not list (LT, ST, UT) is then kept and cleaned too, instead of removed.
    reject_burned_in : bool
        Refuse data sets flagged as possibly holding burned-in text (:class:`BurnedInRejected`;
        :func:`deidentify_tree` writes none of them and lists them), for sites that cannot
        review pixels.

    Notes
    -----
    The per-patient date offsets are cached in the instance; they derive from the key and the
    original PatientID (or PatientName when the ID is empty), so another instance with the same
    key computes the same ones.
    """

    def __init__(self, key=None, *, date_policy="shift", age_policy="keep", sex_policy="keep",
                 keep_descriptors=False, reject_burned_in=False):
        self._key, self.random_key = _as_key(key)
        self.date_policy = _check_choice(date_policy, "date_policy", DATE_POLICIES)
        self.age_policy = _check_choice(age_policy, "age_policy", KEEP_POLICIES)
        self.sex_policy = _check_choice(sex_policy, "sex_policy", KEEP_POLICIES)
        self.keep_descriptors = _check_bool(keep_descriptors, "keep_descriptors")
        self.reject_burned_in = _check_bool(reject_burned_in, "reject_burned_in")
        self.options = profile.Options(
            modified_dates=date_policy == "shift", clean_descriptors=keep_descriptors,
            patient_characteristics="keep" in (age_policy, sex_policy))
        self._offsets = {}

    def __repr__(self):
        # The key never appears: reprs end up in logs and notebooks.
        return (f"Deidentifier(date_policy={self.date_policy!r}, age_policy={self.age_policy!r}, "
                f"sex_policy={self.sex_policy!r}, keep_descriptors={self.keep_descriptors!r}, "
                f"reject_burned_in={self.reject_burned_in!r})")

    # -- keyed derivations ------------------------------------------------------------------
    def _mac(self, purpose, text):
        # The purpose prefix keeps the derivations independent: a UID hash never equals a pseudonym.
        message = purpose.encode("ascii") + b"\0" + str(text).encode("utf-8", "surrogateescape")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def map_uid(self, uid):
        """The replacement of ``uid``: ``2.25.`` and a 128-bit integer from HMAC-SHA256(key, uid).

        The 16 bytes carry the version-8 and RFC 4122 variant bits, so the result is a valid
        UUID-derived UID (PS3.5 B.2) of at most 44 characters.
        """
        b = bytearray(self._mac("uid", str(uid).strip())[:16])
        b[6] = (b[6] & 0x0F) | 0x80
        b[8] = (b[8] & 0x3F) | 0x80
        return "2.25." + str(int.from_bytes(b, "big"))

    def pseudonym(self, patient):
        """``'ANON-'`` and 12 hex digits of HMAC-SHA256(key, patient)."""
        return "ANON-" + self._mac("patient", patient).hex()[:12]

    def date_offset(self, patient):
        """The patient's shift as ``(days, seconds)``: dates move back ``days``, clocks by both.

        ``days`` lies in 365..3652 and ``seconds`` in 1..86399, so no date and no time of day is
        left as it was; a date with its time moves back ``days * 86400 + seconds`` seconds.
        """
        if patient not in self._offsets:
            lo, hi = _OFFSET_RANGE
            n = int.from_bytes(self._mac("date-offset", patient)[:8], "big")
            s = int.from_bytes(self._mac("time-offset", patient)[:8], "big")
            self._offsets[patient] = (lo + n % (hi - lo + 1), 1 + s % 86399)
        return self._offsets[patient]

    def source_id(self, path):
        """A keyed hash (16 hex digits) naming an input path in the log without revealing it."""
        return self._mac("path", path).hex()[:16]

    # -- one data set -----------------------------------------------------------------------
    def deidentify(self, dataset_or_path):
        """De-identify a copy of a data set (the input object and file stay as they are).

        Parameters
        ----------
        dataset_or_path : pydicom.Dataset, str or os.PathLike
            A data set, or the path of a DICOM file (with its 128-byte preamble and ``DICM``).

        Returns
        -------
        dataset : pydicom.Dataset
            The de-identified copy (a ``FileDataset`` with consistent file meta for a file).
        log : DeidLog
            What was changed, by attribute, and the flags.

        Raises
        ------
        DataError
            The path is missing, not a DICOM file or unreadable (the message names it).
        BurnedInRejected
            ``reject_burned_in`` is set and the data set is flagged as holding burned-in text.
        """
        pydicom = load_pydicom()
        if not isinstance(dataset_or_path, (str, os.PathLike, pydicom.Dataset)):
            raise ConfigError(f"expected a pydicom Dataset or a path, got {type(dataset_or_path).__name__}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if isinstance(dataset_or_path, pydicom.Dataset):
                ds = copy.deepcopy(dataset_or_path)
            else:
                ds = read_dicom(pydicom, dataset_or_path)
            ds, log = self.process(pydicom, ds)
        note_warnings(log, caught)
        return ds, log

    def process(self, pydicom, ds):
        """De-identify ``ds`` in place (a fresh read or a copy, never the caller's object).

        Returns
        -------
        (pydicom.Dataset, DeidLog)
        """
        log = DeidLog()
        flag_images(ds, log)
        if log.burned_in and self.reject_burned_in:
            raise BurnedInRejected("flagged as possibly holding burned-in text in its pixels "
                                   "(reject_burned_in is set)")
        patient = str(ds.get("PatientID", "") or "").strip() or str(ds.get("PatientName", "") or "").strip()
        if patient:
            log.pseudonym = self.pseudonym(patient)
        else:
            log.flags.append("no PatientID or PatientName: shares its date offset with every such file")
        days, seconds = self.date_offset(patient)
        state = {"days": -days, "seconds": -(days * 86400 + seconds), "patient": patient, "kept_text": 0,
                 "tz": temporal.parse_tz(ds.get("TimezoneOffsetFromUTC")) or 0,
                 "pattern": self._identifiers(ds) if self.keep_descriptors else None}
        self._clean(ds, "", log, state, dummy=False)
        self._clean_meta(ds, log)
        if state["kept_text"]:
            log.flags.append(f"{state['kept_text']} free-text value(s) kept after cleaning: "
                             "review them for names and dates")
        self._mark(pydicom, ds)
        if getattr(ds, "preamble", None):
            # The preamble is free for applications (TIFF headers...), so old content could hide there.
            ds.preamble = b"\0" * 128
        return ds, log

    def _identifiers(self, ds):
        """The cleaning pattern: every value of an attribute the profile removes or replaces, and names."""
        found = []
        for elem in ds.iterall():
            if elem.tag.is_private or elem.VR not in _WORDY or elem.is_empty:
                continue
            action, _ = profile.action(int(elem.tag), self.options)
            if elem.VR == "PN" or action in _IDENTIFYING:  # not the descriptors being cleaned
                found.append(elem.value)
        return identifier_pattern(found)

    # -- the walk ---------------------------------------------------------------------------
    def _clean(self, ds, prefix, log, state, dummy):
        """Apply the profile to every attribute of ``ds``; ``dummy``: inside a sequence replaced by D or U*."""
        shifts = []
        for tag in list(ds.keys()):
            if tag.is_private:
                # Deleted before conversion: a private value is never even decoded.
                del ds[tag]
                log.actions[f"{prefix}({tag.group:04X},{tag.element:04X})"] = "private-removed"
                continue
            try:
                elem = ds[tag]
            except Exception:
                del ds[tag]  # a value that cannot be decoded cannot be checked
                log.actions[f"{prefix}({tag.group:04X},{tag.element:04X})"] = "removed"
                continue
            path = prefix + _tag_name(elem)
            action = self._decide(elem, prefix == "", dummy)
            if action == "shift":
                shifts.append(elem)
                continue
            done = self._apply(ds, elem, action, path, log, state)
            if done:
                log.actions[path] = done
        for elem, done in temporal.shift_item(shifts, state["days"], state["seconds"], state["tz"]):
            log.actions[prefix + _tag_name(elem)] = done

    def _decide(self, elem, top, dummy):
        """The action for one element: a profile code, or 'shift', 'pseudonym', 'recurse', 'dummy-recurse'."""
        tag, vr, kw = elem.tag, elem.VR, elem.keyword
        if (tag.group & 0xFF00) in (0x5000, 0x6000) or tag.element == 0:
            return "X"  # curves and overlays may draw text; group lengths go stale
        if kw in ("PatientName", "PatientID"):
            # The data set's own name and ID share one pseudonym (a dummy the table allows); a
            # patient referenced inside a sequence is pseudonymised from its own value.
            return "pseudonym" if top else "pseudonym-own"
        action, basic = profile.action(int(tag), self.options)
        if (kw == "PatientAge" and self.age_policy == "remove") or (
                kw in ("PatientSex", "PatientSexNeutered") and self.sex_policy == "remove"):
            action = basic
        if action is None:
            return self._generic(vr, kw, dummy)
        if action == "C":
            if vr in _TEMPORAL or kw == "TimezoneOffsetFromUTC":
                return "shift"
            if vr == "SQ":
                return "recurse"
            if vr == "CS":
                return "K"
            if vr in TEXT_VRS and self.keep_descriptors:
                return "C"
            # Free text is kept only on request (the user then reviews it); binary cannot be cleaned.
            action = basic
        if vr == "SQ":
            return {"K": "recurse", "D": "dummy-recurse", "U*": "dummy-recurse"}.get(action, action)
        if action == "U*":
            return "U"
        return action

    def _generic(self, vr, kw, dummy):
        """The rule for an attribute the table does not list."""
        if vr == "UN" or not kw:
            return "X"  # unknown tags, or values of unknown type, cannot be checked
        if vr == "SQ":
            return "dummy-recurse" if dummy else "recurse"
        if vr == "UI":
            return "uid"  # instance UIDs: class, transfer syntax and coding scheme UIDs stay
        if vr in _TEMPORAL:
            return "shift" if self.date_policy == "shift" else "Z"
        if dummy:
            # Inside a sequence the profile replaces by a dummy: every text goes, while numbers and
            # coded terms (CS) keep the items' structure.
            return "K" if vr in NUMBER_VRS or vr in ("CS", "AS") else "D"
        if vr in _FREE_TEXT:
            return "C" if self.keep_descriptors else "X"
        if vr == "PN":
            return "Z"
        if vr in ("AE", "UR"):
            return "X"  # AE titles and URLs name the site and its machines
        return "K"

    def _apply(self, ds, elem, action, path, log, state):
        """Carry out ``action`` on ``elem``; the logged action, or None when nothing changed."""
        if action == "X":
            del ds[elem.tag]
            return "removed"
        if action in ("recurse", "dummy-recurse"):
            for i, item in enumerate(elem.value or []):
                self._clean(item, f"{path}[{i}].", log, state, dummy=action == "dummy-recurse")
            return None
        if elem.is_empty or action == "K":
            return None
        if action == "Z":
            elem.clear()
            return "removed"
        if action in ("pseudonym", "pseudonym-own"):
            elem.value = self.pseudonym(state["patient"] if action == "pseudonym" else str(elem.value))
            return "replaced"
        if action in ("U", "uid"):
            return self._replace_uids(elem, every=action == "U")
        if action == "C":
            new = clean_text(elem.value, state["pattern"])
            state["kept_text"] += 1
            if new != elem.value:
                elem.value = new
                return "cleaned"
            return None
        # D: a dummy of the VR; a UID gets its keyed replacement, so references still agree.
        if elem.VR == "UI":
            return self._replace_uids(elem, every=True)
        elem.value = DUMMY_NAME if elem.VR == "PN" else dummy_value(elem.VR)
        return "replaced"

    def _replace_uids(self, elem, every=False):
        """Keyed replacements for the UIDs of ``elem``; ``every``: class UIDs too (the table says U)."""
        if not every and ("ClassUID" in elem.keyword or "TransferSyntaxUID" in elem.keyword
                          or elem.keyword == "CodingSchemeUID"):
            return None
        values, multi = _values(elem.value)
        new = [v if not v or str(v).startswith(_DICOM_ROOT) else self.map_uid(v) for v in values]
        if new == values:
            return None
        elem.value = new if multi else new[0]
        return "uid-replaced"

    def deidentify_tree(self, in_path, out_path, *, hash_folder_names=False):
        """De-identify every DICOM file under ``in_path`` into ``out_path``; see :func:`deidentify_tree`."""
        from .tree import run_tree  # the folder driver builds on this class

        return run_tree(self, in_path, out_path, hash_folder_names=hash_folder_names)

    # -- file meta and the de-identification record ----------------------------------------
    def _clean_meta(self, ds, log):
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in list(meta.keys()):
            kw = meta[tag].keyword
            if kw not in _META_KEEP:
                del meta[tag]
                log.actions[f"file_meta.{kw or f'({tag.group:04X},{tag.element:04X})'}"] = "removed"
        # The standard requires the meta copies to equal the SOP Class and Instance UIDs they
        # describe; filling in missing ones lets a file with a sloppy header be written again.
        if "MediaStorageSOPInstanceUID" in meta or "SOPInstanceUID" in ds:
            old = meta.get("MediaStorageSOPInstanceUID")
            new = ds.get("SOPInstanceUID") or self.map_uid(old)
            if new != old:
                meta.MediaStorageSOPInstanceUID = new
                log.actions["file_meta.MediaStorageSOPInstanceUID"] = "uid-replaced"
        if not meta.get("MediaStorageSOPClassUID") and ds.get("SOPClassUID"):
            meta.MediaStorageSOPClassUID = ds.SOPClassUID

    def _mark(self, pydicom, ds):
        items = []
        for code, meaning in self.options.codes():
            item = pydicom.Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
            items.append(item)
        shifted = self.options.modified_dates
        ds.PatientIdentityRemoved = "YES"
        # DeidentificationMethod is LO (64 characters a value), so each option is one value.
        ds.DeidentificationMethod = [
            "tinycnn.privacy", f"PS3.15 Table E.1-1 ({profile.EDITION}) Basic Profile",
            "UIDs: HMAC-SHA256 under 2.25",
            "dates and times shifted per patient, in UTC" if shifted else "dates and times removed",
            "patient characteristics kept" if self.options.patient_characteristics
            else "patient characteristics removed",
            "age removed" if self.age_policy == "remove" else "age kept",
            "sex removed" if self.sex_policy == "remove" else "sex kept",
            "descriptors cleaned, flagged for review" if self.keep_descriptors else "descriptors removed",
        ]
        ds.DeidentificationMethodCodeSequence = items
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"


# The file meta group keeps only what identifies the format; AE titles and addresses name a site.
_META_KEEP = frozenset("""
    FileMetaInformationGroupLength FileMetaInformationVersion MediaStorageSOPClassUID
    MediaStorageSOPInstanceUID TransferSyntaxUID ImplementationClassUID ImplementationVersionName
""".split())


def deidentify(dataset_or_path, *, key=None, date_policy="shift", age_policy="keep", sex_policy="keep",
               keep_descriptors=False, reject_burned_in=False):
    """De-identify one data set or file with a fresh :class:`Deidentifier`.

    Parameters
    ----------
    dataset_or_path : pydicom.Dataset, str or os.PathLike
        Never modified: a copy is de-identified.
    key : bytes, str or None
        Secret for pseudonyms, date offsets and UIDs; ``None`` draws a random one for this call.
    date_policy, age_policy, sex_policy, keep_descriptors, reject_burned_in
        See :class:`Deidentifier`.

    Returns
    -------
    (pydicom.Dataset, DeidLog)
    """
    return Deidentifier(key, date_policy=date_policy, age_policy=age_policy, sex_policy=sex_policy,
                        keep_descriptors=keep_descriptors,
                        reject_burned_in=reject_burned_in).deidentify(dataset_or_path)
