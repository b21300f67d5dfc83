"""De-identify DICOM files before they leave the hospital: pseudonyms, keyed UIDs, shifted dates.

The rules follow the DICOM PS3.15 Annex E *Basic Application Level Confidentiality Profile* for
the attributes a diagnosis data set carries, with two options the code sequence declares:

- *Retain Longitudinal Temporal Information with Modified Dates* (``date_policy='shift'``): every
  date of one patient moves by the same whole number of days, so intervals survive;
- *Retain Patient Characteristics* (``age_policy`` / ``sex_policy`` ``'keep'``).

Everything that depends on a secret ``key`` is an HMAC-SHA256 of it: the patient pseudonym
(``ANON-<12 hex>``), the date offset and each new UID (``2.25.<128-bit integer>``). With the same key
the same patient, study or instance gets the same replacement in every file and in every run, so
a folder can be processed in pieces. Without a key a random one is drawn per :class:`Deidentifier`
(and per :func:`deidentify_tree` call); consistency then holds within that run only, and nobody,
this module included, can link the output back to the originals.

The pixel data is copied untouched: text burned into the image is *flagged*, not removed.

Example
-------
>>> from tinycnn.privacy import deidentify_tree                      # doctest: +SKIP
>>> deidentify_tree("raw_scans", "shareable", key=open("site.key", "rb").read())  # doctest: +SKIP
"""

import copy
import datetime
import hashlib
import hmac
import json
import os
import secrets
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, DataError

__all__ = ["DeidLog", "Deidentifier", "TreeSummary", "add_cli", "deidentify", "deidentify_tree"]

LOG_NAME = "deidentification_log.json"
PROFILE = "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile"
DATE_POLICIES = ("shift", "remove")
KEEP_POLICIES = ("keep", "remove")
# Shifting back 1 to 10 years moves every study out of any window an attacker could know,
# and a nonzero minimum guarantees that no date is left as it was.
_OFFSET_RANGE = (365, 3652)
_DICOM_ROOT = "1.2.840.10008."  # UIDs under the standard's root name classes, never instances
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_BURN_IN_MODALITIES = frozenset({"US", "SC", "XC", "ES", "OT", "DOC", "GM", "OP", "SM"})

# Annex E action X (delete): identifying or free-text attributes, and sequences whose every
# item describes a person, a place, a request or an original value.
_REMOVE = frozenset("""
    OtherPatientIDs OtherPatientIDsSequence OtherPatientNames IssuerOfPatientID
    IssuerOfPatientIDQualifiersSequence PatientBirthTime PatientBirthName PatientMotherBirthName
    PatientAddress PatientTelephoneNumbers PatientTelecomInformation MilitaryRank BranchOfService
    EthnicGroup Occupation AdditionalPatientHistory PatientComments PatientReligiousPreference
    MedicalRecordLocator CountryOfResidence RegionOfResidence PatientInstitutionResidence
    CurrentPatientLocation PatientState MedicalAlerts Allergies SmokingStatus PregnancyStatus
    LastMenstrualDate SpecialNeeds PatientInsurancePlanCodeSequence PatientPrimaryLanguageCodeSequence
    PatientSize PatientWeight PatientBirthDateInAlternativeCalendar PatientDeathDateInAlternativeCalendar
    PatientAlternativeCalendar ReferencedPatientSequence ReferencedPatientAliasSequence ResponsiblePerson
    ResponsiblePersonRole ResponsibleOrganization PatientTransportArrangements AdmissionID
    IssuerOfAdmissionIDSequence ServiceEpisodeID ServiceEpisodeDescription
    InstitutionName InstitutionAddress InstitutionalDepartmentName InstitutionCodeSequence
    InstitutionalDepartmentTypeCodeSequence ReferringPhysicianAddress ReferringPhysicianTelephoneNumbers
    ReferringPhysicianIdentificationSequence ConsultingPhysicianName ConsultingPhysicianIdentificationSequence
    PerformingPhysicianName PerformingPhysicianIdentificationSequence OperatorsName
    OperatorIdentificationSequence PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
    NameOfPhysiciansReadingStudy PhysiciansReadingStudyIdentificationSequence RequestingPhysician
    RequestingService ScheduledPerformingPhysicianName ScheduledPerformingPhysicianIdentificationSequence
    OrderEnteredBy OrderEntererLocation OrderCallbackPhoneNumber ReviewerName PersonAddress
    PersonTelephoneNumbers PersonIdentificationCodeSequence
    StationName DeviceSerialNumber DetectorID GantryID PlateID CassetteID GeneratorID PerformedLocation
    PerformedStationName PerformedStationAETitle ScheduledStationName ScheduledStationAETitle
    ScheduledProcedureStepLocation PerformedStationNameCodeSequence ScheduledStationNameCodeSequence
    ScheduledStudyLocation ScheduledStudyLocationAETitle
    RequestAttributesSequence PerformedProcedureStepID RequestedProcedureID ScheduledProcedureStepID
    StudyIDIssuer IssuerOfAccessionNumberSequence ReferencedStudySequence
    ReferencedPerformedProcedureStepSequence
    IconImageSequence DigitalSignaturesSequence MACParametersSequence EncryptedAttributesSequence
    OriginalAttributesSequence ModifiedAttributesSequence ContentSequence TextString TextComments
    GraphicAnnotationSequence DataSetTrailingPadding
""".split())

# Annex E action Z: type-2 attributes must stay present, so their value is emptied.
_EMPTY = frozenset("""
    PatientBirthDate ReferringPhysicianName AccessionNumber StudyID ContentCreatorName
    FillerOrderNumberImagingServiceRequest PlacerOrderNumberImagingServiceRequest
""".split())

# Annex E action D for type-1 person names: a dummy keeps the object valid.
_DUMMY_NAME = "ANONYMOUS"
_DUMMY = frozenset({"VerifyingObserverName", "PersonName"})

# Free-text descriptions that often quote a name, a date or a place; kept only on request.
_DESCRIPTORS = frozenset("""
    StudyDescription SeriesDescription ProtocolName ImageComments RequestedProcedureDescription
    PerformedProcedureStepDescription ScheduledProcedureStepDescription AdmittingDiagnosesDescription
    DerivationDescription AcquisitionComments ReasonForStudy ReasonForTheRequestedProcedure
    RequestedProcedureComments CommentsOnThePerformedProcedureStep StudyComments VisitComments
    FrameComments ImagePresentationComments AcquisitionDeviceProcessingDescription
""".split())

# The file meta group keeps only what identifies the format; AE titles and addresses name a site.
_META_KEEP = frozenset("""
    FileMetaInformationGroupLength FileMetaInformationVersion MediaStorageSOPClassUID
    MediaStorageSOPInstanceUID TransferSyntaxUID ImplementationClassUID ImplementationVersionName
""".split())

_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
}


def _pydicom():
    """Import pydicom on first use, so the rest of tinycnn works without it."""
    try:
        import pydicom
    except ImportError as exc:
        raise ImportError(
            "tinycnn.privacy needs pydicom to read and write DICOM files: pip install tinycnn[dicom]"
        ) from exc
    return pydicom


@dataclass
class DeidLog:
    """What :meth:`Deidentifier.deidentify` did to one data set, without any original value.

    Attributes
    ----------
    actions : dict of str to str
        Attribute path (keyword, or ``(gggg,eeee)`` for private and unknown tags; nested items as
        ``SequenceKeyword[i].Keyword``; file meta as ``file_meta.Keyword``) to its action:
        ``'removed'`` (deleted, or emptied where the standard requires presence), ``'replaced'``
        (pseudonym or dummy), ``'shifted'``, ``'uid-replaced'`` or ``'private-removed'``.
    flags : list of str
        What needs a human look before sharing (burned-in text, kept descriptors, ...).
    pseudonym : str or None
        The patient pseudonym written as PatientName and PatientID (None without a patient).

    Notes
    -----
    The date offset is deliberately absent: with it the shifted dates give back the real ones.
    """

    actions: dict = field(default_factory=dict)
    flags: list = field(default_factory=list)
    pseudonym: str | None = None

    def counts(self):
        """Number of attributes per action, a :class:`collections.Counter`."""
        return Counter(self.actions.values())

    def to_dict(self):
        """A JSON-ready copy."""
        return {"pseudonym": self.pseudonym, "actions": dict(self.actions), "flags": list(self.flags)}


@dataclass
class TreeSummary:
    """Outcome of :func:`deidentify_tree`.

    Attributes
    ----------
    written, skipped, flagged : int
        Files written, input files not written, written files with at least one flag.
    log_path : pathlib.Path
        The ``deidentification_log.json`` written in the output folder.
    skip_reasons, flag_counts : dict of str to int
        How many files each reason or flag concerns.
    random_key : bool
        True when no key was given: the output links to no other run.
    """

    written: int
    skipped: int
    flagged: int
    log_path: Path
    skip_reasons: dict
    flag_counts: dict
    random_key: bool


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
        Shift every DA/DT date by a per-patient number of days (times of day are kept, so
        intervals are exact), or empty every DA/DT/TM value.
    age_policy, sex_policy : {'keep', 'remove'}
        Keep or drop PatientAge / empty PatientSex.
    keep_descriptors : bool
        Keep free-text descriptions (StudyDescription, SeriesDescription, comments...); they
        are flagged for review then.

    Notes
    -----
    The per-patient date offsets are cached in the instance; they derive from the key and the
    original PatientID (or PatientName when the ID is empty), so another instance with the same
    key computes the same ones.
    """

    def __init__(self, key=None, *, date_policy="shift", age_policy="keep", sex_policy="keep",
                 keep_descriptors=False):
        self._key, self.random_key = _as_key(key)
        self.date_policy = _check_choice(date_policy, "date_policy", DATE_POLICIES)
        self.age_policy = _check_choice(age_policy, "age_policy", KEEP_POLICIES)
        self.sex_policy = _check_choice(sex_policy, "sex_policy", KEEP_POLICIES)
        if not isinstance(keep_descriptors, bool):
            raise ConfigError(f"keep_descriptors must be a bool, got {keep_descriptors!r}")
        self.keep_descriptors = keep_descriptors
        self._offsets = {}

    def __repr__(self):
        # The key never appears: reprs end up in logs and notebooks.
        return (f"Deidentifier(date_policy={self.date_policy!r}, age_policy={self.age_policy!r}, "
                f"sex_policy={self.sex_policy!r}, keep_descriptors={self.keep_descriptors!r})")

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

    def _date_offset(self, patient):
        if patient not in self._offsets:
            lo, hi = _OFFSET_RANGE
            n = int.from_bytes(self._mac("date-offset", patient)[:8], "big")
            self._offsets[patient] = -(lo + n % (hi - lo + 1))
        return self._offsets[patient]

    def _source_id(self, path):
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
        """
        pydicom = _pydicom()
        if not isinstance(dataset_or_path, (str, os.PathLike, pydicom.Dataset)):
            raise ConfigError(f"expected a pydicom Dataset or a path, got {type(dataset_or_path).__name__}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if isinstance(dataset_or_path, pydicom.Dataset):
                ds = copy.deepcopy(dataset_or_path)
            else:
                ds = _read(pydicom, dataset_or_path)
            ds, log = self._process(pydicom, ds)
        _note_warnings(log, caught)
        return ds, log

    def _process(self, pydicom, ds):
        """De-identify ``ds`` in place: a fresh read or a copy, never the caller's object."""
        log = DeidLog()
        patient = str(ds.get("PatientID", "") or "").strip() or str(ds.get("PatientName", "") or "").strip()
        if patient:
            log.pseudonym = self.pseudonym(patient)
        else:
            log.flags.append("no PatientID or PatientName: shares its date offset with every such file")
        _flag_images(ds, log)
        state = {"offset": self._date_offset(patient), "patient": patient, "kept_text": 0}
        self._clean(pydicom, ds, "", log, state)
        self._clean_meta(ds, log)
        if state["kept_text"]:
            log.flags.append(f"{state['kept_text']} free-text descriptor(s) kept: review them for names and dates")
        self._mark(pydicom, ds)
        if getattr(ds, "preamble", None):
            # The preamble is free for applications (TIFF headers...), so old content could hide there.
            ds.preamble = b"\0" * 128
        return ds, log

    def _clean(self, pydicom, ds, prefix, log, state):
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
            action = self._rule(elem, state, top=not prefix)
            if action == "delete":
                del ds[tag]
                action = "removed"
            elif action == "recurse":
                for i, item in enumerate(elem.value or []):
                    self._clean(pydicom, item, f"{path}[{i}].", log, state)
                action = None
            if action:
                log.actions[path] = action

    def _rule(self, elem, state, top):
        """Apply the rule for one public element; returns 'delete', 'recurse' or the logged action."""
        kw, vr, tag = elem.keyword, elem.VR, elem.tag
        empty = elem.is_empty
        if (tag.group & 0xFF00) in (0x5000, 0x6000) or tag.element == 0 or vr == "UN" or not kw:
            # Curves and overlays may draw text; group lengths go stale; unknown tags are unchecked.
            return "delete"
        if kw in ("PatientName", "PatientID"):
            if empty:
                return None
            # The data set's own name and ID share one pseudonym, so they always agree; a patient
            # referenced inside a sequence is pseudonymised from its own value.
            elem.value = self.pseudonym(state["patient"] if top else str(elem.value))
            return "replaced"
        if kw == "PatientAge":
            return "delete" if self.age_policy == "remove" else None
        if kw == "PatientSex":
            return _emptied(elem) if self.sex_policy == "remove" and not empty else None
        if kw in _REMOVE:
            return "delete"
        if kw in _EMPTY:
            return None if empty else _emptied(elem)
        if kw in _DUMMY:
            elem.value = _DUMMY_NAME
            return "replaced"
        if kw in _DESCRIPTORS or vr in ("LT", "ST", "UT"):
            if self.keep_descriptors:
                state["kept_text"] += not empty
                return None
            return "delete"
        if vr == "SQ":
            return "recurse"
        if empty:
            return None
        if vr == "UI":
            return self._replace_uids(elem)
        if vr in ("DA", "DT", "TM"):
            return self._dates(elem, state["offset"])
        if vr == "PN":
            return _emptied(elem)
        if vr in ("AE", "UR"):
            return "delete"  # AE titles and URLs name the site and its machines
        return None

    def _replace_uids(self, elem):
        if "ClassUID" in elem.keyword or "TransferSyntaxUID" in elem.keyword or elem.keyword == "CodingSchemeUID":
            return None
        values, multi = _values(elem.value)
        new = [v if not v or str(v).startswith(_DICOM_ROOT) else self.map_uid(v) for v in values]
        if new == values:
            return None
        elem.value = new if multi else new[0]
        return "uid-replaced"

    def _dates(self, elem, offset):
        if self.date_policy == "remove":
            return _emptied(elem)
        if elem.VR == "TM":
            return None  # whole-day shifts leave times of day, and so every interval, intact
        values, multi = _values(elem.value)
        new = [_shift(str(v), offset, elem.VR) for v in values]
        if any(v is None for v in new):
            return _emptied(elem)  # an unparseable or partial date cannot be shifted, so it goes
        elem.value = new if multi else new[0]
        return "shifted"

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
        shifted = self.date_policy == "shift"
        codes = ["113100"] + (["113107"] if shifted else [])
        if "keep" in (self.age_policy, self.sex_policy):
            codes.append("113108")
        items = []
        for code in codes:
            item = pydicom.Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", _CODES[code]
            items.append(item)
        ds.PatientIdentityRemoved = "YES"
        # DeidentificationMethod is LO (64 characters a value), so each option is one value.
        ds.DeidentificationMethod = [
            "tinycnn.privacy", "PS3.15 E.1 Basic Profile", "UIDs: HMAC-SHA256 under 2.25",
            "dates shifted per patient" if shifted else "dates removed",
            "age kept" if self.age_policy == "keep" else "age removed",
            "sex kept" if self.sex_policy == "keep" else "sex removed",
            "descriptors kept" if self.keep_descriptors else "descriptors removed",
        ]
        ds.DeidentificationMethodCodeSequence = items
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"

    # -- a folder ---------------------------------------------------------------------------
    def deidentify_tree(self, in_path, out_path, *, hash_folder_names=False):
        """De-identify every DICOM file under ``in_path`` into ``out_path``; see :func:`deidentify_tree`."""
        pydicom = _pydicom()
        src, dst = Path(in_path), Path(out_path)
        if not src.exists():
            raise DataError(f"{src}: no such file or folder")
        src_r, dst_r = src.resolve(), dst.resolve()
        if dst_r.exists() and not dst_r.is_dir():
            raise ConfigError(f"out_path {dst} exists and is not a folder")
        if src_r.is_dir():
            if dst_r == src_r or src_r in dst_r.parents or dst_r in src_r.parents:
                raise ConfigError(f"out_path {dst} must lie outside in_path {src}, and not contain it: "
                                  "de-identified copies are never mixed with the originals")
            files = sorted((Path(root) / name for root, _, names in os.walk(src_r) for name in names),
                           key=lambda p: p.relative_to(src_r).as_posix())
        else:
            if dst_r in (src_r, src_r.parent):
                raise ConfigError(f"out_path {dst} must not be the input file nor its folder")
            files = [src_r]
        written, skipped, taken = [], [], set()
        for index, path in enumerate(files):
            rel = path.relative_to(src_r).as_posix() if src_r.is_dir() else path.name
            entry = {"index": index, "source": self._source_id(rel)}
            folder = Path(rel).parent
            if hash_folder_names:
                folder = Path(*[self._source_id("folder:" + p) for p in folder.parts])
            # pydicom's warnings quote the malformed values, which may be identifying: they are
            # counted into the log instead of reaching the console.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    name, log = self._write_one(pydicom, path, rel, dst_r / folder, taken, not src_r.is_dir())
                except _Skip as why:
                    skipped.append({**entry, "reason": str(why)})
                    continue
            _note_warnings(log, caught)
            written.append({**entry, "output": (folder / name).as_posix(), **log.to_dict()})
        dst_r.mkdir(parents=True, exist_ok=True)
        log_path = dst_r / LOG_NAME
        record = {
            "tool": "tinycnn.privacy", "profile": PROFILE,
            "options": {"date_policy": self.date_policy, "age_policy": self.age_policy,
                        "sex_policy": self.sex_policy, "keep_descriptors": self.keep_descriptors,
                        "hash_folder_names": hash_folder_names},
            "key": "random, this run only" if self.random_key else "given",
            "folder_names": "hashed" if hash_folder_names else "copied as they are: check them for identifying text",
            "files": written, "skipped": skipped,
        }
        log_path.write_text(json.dumps(record, indent=1), encoding="utf-8")
        flags = Counter(f for w in written for f in w["flags"])
        return TreeSummary(written=len(written), skipped=len(skipped),
                           flagged=sum(bool(w["flags"]) for w in written), log_path=log_path,
                           skip_reasons=dict(Counter(s["reason"] for s in skipped)),
                           flag_counts=dict(flags), random_key=self.random_key)

    def _write_one(self, pydicom, path, rel, folder, taken, single):
        """Read, de-identify and write one file of a tree; its output name and log, or _Skip."""
        ds, log = self._read_for_tree(pydicom, path, single)
        name = f"{ds.get('SOPInstanceUID') or self._source_id(rel)}.dcm"
        target = folder / name
        if target in taken:
            raise _Skip("duplicate SOPInstanceUID: the same instance was already written")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            ds.save_as(target, enforce_file_format=True)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            target.unlink(missing_ok=True)
            raise _Skip(f"cannot be written as DICOM, e.g. incomplete file meta ({type(exc).__name__})") from None
        taken.add(target)
        return name, log

    def _read_for_tree(self, pydicom, path, single):
        try:
            ds = _read(pydicom, path)
        except DataError as exc:
            if single:
                raise
            raise _Skip(exc.reason) from None
        if ds.file_meta.get("MediaStorageSOPClassUID") == _DICOMDIR_CLASS:
            if single:
                raise DataError(f"{path}: a DICOMDIR index, not an image; de-identify its folder instead")
            raise _Skip("DICOMDIR index: its file references would point at the original names")
        return self._process(pydicom, ds)  # a fresh read: no copy needed


class _Skip(Exception):
    """A file of a folder that is logged as skipped instead of failing the whole run."""


def _note_warnings(log, caught):
    if caught:
        # No count in the text: identical flags add up in the summary.
        log.flags.append("pydicom warned about malformed values (not shown: they may quote identifying text)")


def _emptied(elem):
    elem.clear()
    return "removed"


def _shift(value, offset, vr):
    """``value`` (DA ``YYYYMMDD`` or DT starting with it) moved by ``offset`` days; None if impossible."""
    text = value.strip().replace(".", "") if vr == "DA" else value.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8])) + datetime.timedelta(days=offset)
    except (ValueError, OverflowError):
        return None
    return f"{day.year:04d}{day.month:02d}{day.day:02d}" + (text[8:] if vr == "DT" else "")


def _flag_images(ds, log):
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if burned == "YES":
        log.flags.append("BurnedInAnnotation=YES: pixel data may contain identifying text; review before sharing")
    elif not burned and modality in _BURN_IN_MODALITIES and "PixelData" in ds:
        log.flags.append(f"BurnedInAnnotation not stated for modality {modality}, which often burns in text; "
                         "review the pixels before sharing")
    if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
        log.flags.append("RecognizableVisualFeatures=YES: the image may show a recognisable face")


def _read(pydicom, path):
    """Read a DICOM file; DataError naming it otherwise, with a value-free ``reason`` attribute."""
    try:
        return pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        err = DataError(f"{path}: not a DICOM file (no 'DICM' marker after the 128-byte preamble)")
        err.reason = "not a DICOM file (no 'DICM' marker after the preamble)"
    except OSError as exc:
        err = DataError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})")
        err.reason = f"cannot be read ({type(exc).__name__})"
    except Exception as exc:  # truncated or corrupt files fail deep inside the reader
        err = DataError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})")
        # Reader messages may quote bytes of the file, so the folder log gets the type only.
        err.reason = f"unreadable DICOM file ({type(exc).__name__})"
    raise err


def deidentify(dataset_or_path, *, key=None, date_policy="shift", age_policy="keep", sex_policy="keep",
               keep_descriptors=False):
    """De-identify one data set or file with a fresh :class:`Deidentifier`.

    Parameters
    ----------
    dataset_or_path : pydicom.Dataset, str or os.PathLike
        Never modified: a copy is de-identified.
    key : bytes, str or None
        Secret for pseudonyms, date offsets and UIDs; ``None`` draws a random one for this call.
    date_policy, age_policy, sex_policy, keep_descriptors
        See :class:`Deidentifier`.

    Returns
    -------
    (pydicom.Dataset, DeidLog)
    """
    return Deidentifier(key, date_policy=date_policy, age_policy=age_policy, sex_policy=sex_policy,
                        keep_descriptors=keep_descriptors).deidentify(dataset_or_path)


def deidentify_tree(in_path, out_path, key=None, *, hash_folder_names=False, **policies):
    """De-identify a DICOM file, or every DICOM file under a folder, into ``out_path``.

    Output files are named after their new SOPInstanceUID (``<uid>.dcm``) in the same sub-folder
    as the input, and ``deidentification_log.json`` lists per file a running index, a keyed hash
    of the original relative path, the output name, the actions and the flags, never a value or an
    original file name. Files that are not DICOM (no ``DICM`` marker), DICOMDIR indexes and second
    copies of an instance are skipped and logged with a reason.

    Parameters
    ----------
    in_path : str or os.PathLike
        A DICOM file or a folder; nothing in it is ever written.
    out_path : str or os.PathLike
        Output folder (created). It must not be ``in_path``, lie inside it or contain it; for a
        single file, it must not be the file's folder.
    key : bytes, str or None
        See :class:`Deidentifier`; ``None`` gives a random key valid for this call only.
    hash_folder_names : bool
        Replace each sub-folder name by a keyed hash. By default the names are copied, as they often
        are class labels; check that they hold no names or dates.
    **policies
        ``date_policy``, ``age_policy``, ``sex_policy``, ``keep_descriptors`` (see :class:`Deidentifier`).

    Returns
    -------
    TreeSummary

    Raises
    ------
    ConfigError
        ``out_path`` overlaps ``in_path``, or a policy is unknown.
    DataError
        ``in_path`` is missing, or is a single file that is not a readable DICOM file.
    """
    return Deidentifier(key, **policies).deidentify_tree(in_path, out_path, hash_folder_names=hash_folder_names)


# -- command line -----------------------------------------------------------------------------
def add_cli(subparsers):
    """Register ``deidentify IN OUT [options]`` on an argparse subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The sub-parser; its ``func`` default takes the parsed arguments and returns an exit code.
    """
    p = subparsers.add_parser(
        "deidentify", help="write de-identified copies of DICOM files (PS3.15 Basic Profile)",
        description="Write de-identified copies of the DICOM files under IN into OUT, with "
                    f"{LOG_NAME}. Input files are never modified.")
    p.add_argument("in_path", metavar="IN", help="a DICOM file or a folder of them")
    p.add_argument("out_path", metavar="OUT", help="output folder, outside IN")
    p.add_argument("--key-file", metavar="F",
                   help="file holding the secret key; without it a random key links nothing across runs")
    p.add_argument("--date-policy", choices=DATE_POLICIES, default="shift",
                   help="shift dates per patient (default) or remove them")
    p.add_argument("--remove-age", action="store_true", help="drop PatientAge")
    p.add_argument("--remove-sex", action="store_true", help="empty PatientSex")
    p.add_argument("--keep-descriptors", action="store_true",
                   help="keep free-text descriptions (flagged for review)")
    p.add_argument("--hash-folder-names", action="store_true",
                   help="replace sub-folder names by keyed hashes")
    p.set_defaults(func=_run_cli)
    return p


def _run_cli(args):
    """Run ``tinycnn deidentify``: 0 on success, 1 on an error (printed, no traceback)."""
    key = None
    try:
        if args.key_file:
            try:
                key = Path(args.key_file).read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the key file {args.key_file}: {exc.strerror}") from None
            if not key:
                raise ConfigError(f"the key file {args.key_file} is empty")
        summary = deidentify_tree(
            args.in_path, args.out_path, key, hash_folder_names=args.hash_folder_names,
            date_policy=args.date_policy, age_policy="remove" if args.remove_age else "keep",
            sex_policy="remove" if args.remove_sex else "keep", keep_descriptors=args.keep_descriptors)
    except (ConfigError, DataError, ImportError, OSError) as exc:
        print(f"tinycnn deidentify: error: {exc}", file=sys.stderr)
        return 1
    print(f"written: {summary.written} file(s) into {args.out_path}")
    print(f"skipped: {summary.skipped} file(s)")
    for reason, n in sorted(summary.skip_reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {reason}")
    print(f"flagged: {summary.flagged} file(s) to review before sharing")
    for flag, n in sorted(summary.flag_counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {flag}")
    print(f"log: {summary.log_path}")
    if not args.hash_folder_names:
        print("sub-folder names: copied as they are; check them or use --hash-folder-names")
    if summary.random_key:
        print("key: random; UIDs and pseudonyms match no other run (use --key-file to link runs)")
    return 0

