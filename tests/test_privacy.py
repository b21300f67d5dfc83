"""De-identification: planted PHI must not survive anywhere, UIDs and dates stay consistent, inputs untouched."""

import argparse
import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402

from tinycnn import privacy  # noqa: E402
from tinycnn.errors import ConfigError, DataError  # noqa: E402

KEY = b"test-key-0123456789abcdef-not-secret"
CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
ROOT = "1.2.826.0.1.3680043.10.937."  # an obviously fake root for the planted UIDs
UID_RE = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")
ACTIONS = {"removed", "replaced", "shifted", "uid-replaced", "private-removed"}
SAMPLES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "SC_rgb_small_odd.dcm")

# Distinctive strings: any hit in the output is a leak, never a coincidence.
PHI_A = {
    "PatientName": "Zyxwvut^Quirinus", "PatientID": "PHI-ID-937451", "PatientBirthDate": "19230517",
    "PatientBirthTime": "031547", "PatientAddress": "742 Quokkastrasse, Vexhollow",
    "PatientTelephoneNumbers": "+41-555-0199-373", "OtherPatientIDs": "PHI-OTHER-28816",
    "IssuerOfPatientID": "Issuer Quokkanet", "PatientMotherBirthName": "Bramblewick^Ysolde",
    "MilitaryRank": "Colonel Fizzwhistle", "Occupation": "Zeppelintuner",
    "AdditionalPatientHistory": "Fell off the Vexhollow bridge", "PatientComments": "Comment Snorkelwhip",
    "InstitutionName": "Qwertzklinik Vexhollow", "InstitutionAddress": "1 Infirmary Plaza Ulmquist",
    "InstitutionalDepartmentName": "Dept Zornbladder", "ReferringPhysicianName": "Fnordley^Hortensia",
    "ReferringPhysicianAddress": "9 Grimsditch Row", "ReferringPhysicianTelephoneNumbers": "+41-555-0142-886",
    "PerformingPhysicianName": "Wibblesworth^Anselm", "OperatorsName": "Tarrapin^Odalys",
    "PhysiciansOfRecord": "Mcgrudder^Philippa", "NameOfPhysiciansReadingStudy": "Stroganova^Ilse",
    "RequestingPhysician": "Quellbright^Osric", "AccessionNumber": "ACC-PHI-55821", "StudyID": "STUDYPHI7781",
    "StationName": "STATION-QX9", "DeviceSerialNumber": "SN-PHI-44120",
    "StudyDescription": "Quirinus knee follow-up", "SeriesDescription": "Series Grumbleflax",
    "ImageComments": "Seen by Dr Plovdivsky", "ProtocolName": "Protocol Vexhollow Knee",
    "NamesOfIntendedRecipientsOfResults": "Gribblewick^Thaddeus",  # a PN in no table: the generic rule
}
# Patient characteristics: kept under the Retain Patient Characteristics option (the default).
RETAINED = {"EthnicGroup": "ETHNOPLANTED", "PatientWeight": "71.5", "PatientSize": "1.83"}
NESTED = {"private": "PRIV-PHI-Glorbnak", "nested_private": "PRIV-NESTED-Kwazzle",
          "nested_name": "Nestorius^Plumtree", "observer": "Observerix^Gundula",
          "preamble": "PREAMBLE-PHI-Quirinus", "source_ae": "AE-QWERTZKLINIK"}
PHI_B = {"PatientName": "Blorptäsh^Ermentrude", "PatientID": "PHI-ID-614009"}
UIDS = {"study": ROOT + "1.1", "series": ROOT + "2.1", "for": ROOT + "5.1", "sop1": ROOT + "3.1",
        "sop2": ROOT + "3.2", "sopB": ROOT + "3.9", "source": ROOT + "4.1", "studyB": ROOT + "1.2",
        "seriesB": ROOT + "2.2"}
DATES = ("20200110", "20200115", "20200112", "20200301")


def _planted(sop, dates, patient="A", burned_in="YES"):
    """CT_small carrying every planted value, a private block and nested sequences with PHI and UIDs."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm", download=False))
    if patient == "A":
        for keyword, value in PHI_A.items():
            setattr(ds, keyword, value)
        ds.PatientAge, ds.PatientSex = "096Y", "F"
        for keyword, value in RETAINED.items():
            setattr(ds, keyword, value)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = UIDS["study"], UIDS["series"]
    else:
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so the umlaut is written as two bytes
        ds.PatientName, ds.PatientID = PHI_B["PatientName"], PHI_B["PatientID"]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = UIDS["studyB"], UIDS["seriesB"]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.FrameOfReferenceUID = UIDS["for"]
    ds.StudyDate, ds.ContentDate = dates[0], dates[1]
    ds.AcquisitionDateTime = dates[0] + "093015.5+0100"
    ds.StudyTime = "101112"
    ds.BurnedInAnnotation = burned_in
    ds.private_block(0x0009, "PLANTED PHI", create=True).add_new(0x01, "LO", NESTED["private"])
    source = Dataset()
    source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = CT_CLASS, UIDS["source"]
    source.PerformingPhysicianName = NESTED["nested_name"]
    source.AcquisitionDate = dates[0]
    source.private_block(0x0011, "PLANTED NESTED", create=True).add_new(0x02, "LO", NESTED["nested_private"])
    ds.SourceImageSequence = [source]
    # Two levels deep: file 1 references file 2, so the mapping must agree across files.
    instance = Dataset()
    instance.ReferencedSOPClassUID, instance.ReferencedSOPInstanceUID = CT_CLASS, UIDS["sop2"]
    observer = Dataset()
    observer.VerifyingObserverName = NESTED["observer"]
    instance.VerifyingObserverSequence = [observer]
    series = Dataset()
    series.SeriesInstanceUID = ds.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    ds.ReferencedSeriesSequence = [series]
    ds.preamble = NESTED["preamble"].encode().ljust(128, b"\0")
    ds.file_meta.SourceApplicationEntityTitle = NESTED["source_ae"]
    return ds


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """An input folder of planted files, bundled samples and a non-DICOM note, de-identified once."""
    base = tmp_path_factory.mktemp("deid")
    src = base / "in"
    (src / "patientA").mkdir(parents=True)
    (src / "patientB").mkdir()
    (src / "samples").mkdir()
    _planted(UIDS["sop1"], DATES[:2]).save_as(src / "patientA" / "scan1.dcm", enforce_file_format=True)
    _planted(UIDS["sop2"], (DATES[2], DATES[3]), burned_in="NO").save_as(
        src / "patientA" / "scan2.dcm", enforce_file_format=True)
    shutil.copy(src / "patientA" / "scan1.dcm", src / "patientA" / "scan1_copy.dcm")
    _planted(UIDS["sopB"], DATES[:2], patient="B").save_as(
        src / "patientB" / "scan_blorptash.dcm", enforce_file_format=True)
    for name in SAMPLES:
        shutil.copy(get_testdata_file(name, download=False), src / "samples" / name)
    (src / "Zyxwvut_Quirinus_report.txt").write_text("Report for Zyxwvut^Quirinus, PHI-ID-937451\n")
    before = _hashes(src)
    out = base / "out"
    summary = privacy.deidentify_tree(src, out, key=KEY)
    outputs = {p.relative_to(out).as_posix(): p for p in out.rglob("*.dcm")}
    log = json.loads((out / privacy.LOG_NAME).read_text(encoding="utf-8"))
    by_source = {}
    for entry in log["files"]:
        by_source[entry["source"]] = entry
    return {"src": src, "out": out, "summary": summary, "before": before, "outputs": outputs, "log": log,
            "by_source": by_source, "key_ids": privacy.Deidentifier(KEY)}


def _hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _output_for(tree, rel):
    """The written file and its log entry for the input at relative path ``rel``."""
    entry = tree["by_source"][tree["key_ids"].source_id(rel)]
    return pydicom.dcmread(tree["out"] / entry["output"]), entry


def _encodings(text):
    """``text`` as the byte strings a DICOM writer or a JSON dump could produce."""
    forms = {text, text.replace("^", " ")} | set(text.split("^"))
    out = set()
    for form in forms:
        for codec in ("utf-8", "latin-1", "utf-16-le", "utf-16-be"):
            try:
                out.add(form.encode(codec))
            except UnicodeEncodeError:
                pass
        out.add(json.dumps(form).strip('"').encode())  # JSON escapes non-ASCII as \\uXXXX
    return out


def _original_uids(folder):
    """Every instance-level UID of the input files: nothing under the DICOM root, no class UID."""
    uids = set(UIDS.values())
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        for elem in [*ds.iterall(), *ds.file_meta]:
            if elem.VR == "UI" and "ClassUID" not in elem.keyword and "TransferSyntax" not in elem.keyword:
                for value in elem.value if elem.VM > 1 else [elem.value]:
                    if value and not value.startswith("1.2.840.10008."):
                        uids.add(value)
    return uids


# -- no leaks --------------------------------------------------------------------------------

def _planted_strings():
    return [*PHI_A.values(), *NESTED.values(), *PHI_B.values(), *DATES]


def test_every_planted_value_is_in_the_input(tree):
    # Guards the leak tests below against passing because a value was never written.
    data = b"".join(p.read_bytes() for p in tree["src"].rglob("*.dcm"))
    missing = [s for s in [*_planted_strings(), *_original_uids(tree["src"])]
               if not any(n in data for n in _encodings(s))]
    assert missing == []


def test_no_planted_value_or_original_uid_in_any_output_file(tree):
    assert len(tree["outputs"]) == 3 + len(SAMPLES)
    needles = {b for s in _planted_strings() for b in _encodings(s)}
    needles |= {u.encode() for u in _original_uids(tree["src"])}
    for rel, path in tree["outputs"].items():
        data = path.read_bytes()
        leaks = [n for n in needles if n in data]
        assert not leaks, f"{rel} still holds {leaks[:5]}"


def test_no_planted_value_original_uid_or_name_in_log_or_output_names(tree):
    text = (tree["out"] / privacy.LOG_NAME).read_text(encoding="utf-8")
    names = "\n".join(tree["outputs"])
    originals = [p.stem for p in tree["src"].rglob("*") if p.is_file()]
    for needle in [*_planted_strings(), *_original_uids(tree["src"]), *originals, "Zyxwvut_Quirinus"]:
        assert needle not in text, needle
        assert needle not in names, needle
    assert KEY.decode() not in text


def test_log_names_actions_by_keyword(tree):
    _, entry = _output_for(tree, "patientA/scan1.dcm")
    actions = entry["actions"]
    assert set(actions.values()) <= ACTIONS
    expected = {"PatientName": "replaced", "PatientID": "replaced", "PatientAddress": "removed",
                "PatientBirthDate": "removed", "InstitutionName": "replaced", "AccessionNumber": "removed",
                "StudyDate": "shifted", "StudyTime": "shifted", "TimezoneOffsetFromUTC": "shifted",
                "AcquisitionDateTime": "shifted", "SOPInstanceUID": "uid-replaced",
                "StudyInstanceUID": "uid-replaced", "file_meta.MediaStorageSOPInstanceUID": "uid-replaced",
                "SourceImageSequence[0].ReferencedSOPInstanceUID": "uid-replaced",
                "SourceImageSequence[0].PerformingPhysicianName": "removed",
                "SourceImageSequence[0].AcquisitionDate": "shifted",
                "ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].VerifyingObserverSequence[0]"
                ".VerifyingObserverName": "replaced",
                "StudyDescription": "removed", "(0009,1001)": "private-removed"}
    for path, action in expected.items():
        assert actions.get(path) == action, path
    assert "SOPClassUID" not in actions and "EthnicGroup" not in actions


def test_every_named_attribute_is_gone_or_replaced_and_no_private_tag_survives(tree):
    ds, entry = _output_for(tree, "patientA/scan1.dcm")
    pseudonym = entry["pseudonym"]
    assert re.fullmatch(r"ANON-[0-9a-f]{12}", pseudonym)
    assert str(ds.PatientName) == ds.PatientID == pseudonym
    for keyword in PHI_A:
        if keyword not in ("PatientName", "PatientID"):
            # Removed, emptied, or a dummy where the table says D (X/Z/D resolves to D).
            assert ds.get(keyword) in (None, "", "ANONYMIZED", "ANONYMOUS"), keyword
    assert not any(elem.tag.is_private for elem in ds.iterall())
    observer = ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].VerifyingObserverSequence[0]
    assert observer.VerifyingObserverName == "ANONYMOUS"  # type 1: a dummy keeps the SR valid
    assert ds.PatientIdentityRemoved == "YES"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
    assert {c.CodingSchemeDesignator for c in ds.DeidentificationMethodCodeSequence} == {"DCM"}
    assert "dates and times shifted per patient, in UTC" in ds.DeidentificationMethod
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.preamble == b"\0" * 128


# -- UIDs ------------------------------------------------------------------------------------

def test_uid_mapping_is_consistent_across_files_and_valid(tree):
    a1, _ = _output_for(tree, "patientA/scan1.dcm")
    a2, _ = _output_for(tree, "patientA/scan2.dcm")
    b, _ = _output_for(tree, "patientB/scan_blorptash.dcm")
    assert a1.StudyInstanceUID == a2.StudyInstanceUID != b.StudyInstanceUID
    assert a1.FrameOfReferenceUID == a2.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a1.SOPInstanceUID != a2.SOPInstanceUID
    ref = a1.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == a1.SeriesInstanceUID
    assert ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == a2.SOPInstanceUID
    for ds in (a1, a2, b):
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID,
                    ds.SourceImageSequence[0].ReferencedSOPInstanceUID):
            assert UID_RE.match(uid) and len(uid) <= 64, uid
            as_uuid = uuid.UUID(int=int(uid[5:]))
            assert as_uuid.variant == uuid.RFC_4122 and as_uuid.version == 8
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == CT_CLASS
        assert ds.SourceImageSequence[0].ReferencedSOPClassUID == CT_CLASS
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_output_names_come_from_the_new_uid_in_the_same_subfolder(tree):
    for rel, path in tree["outputs"].items():
        ds = pydicom.dcmread(path)
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
        assert rel.split("/")[0] in ("patientA", "patientB", "samples")


def test_same_key_same_uids_other_key_other_uids(tmp_path):
    path = get_testdata_file("MR_small.dcm", download=False)
    one, log1 = privacy.deidentify(path, key=KEY)
    again, log2 = privacy.Deidentifier(KEY).deidentify(path)
    other, log3 = privacy.deidentify(path, key=b"another key")
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert one[keyword].value == again[keyword].value != other[keyword].value
    assert log1.pseudonym == log2.pseudonym != log3.pseudonym
    # Without a key every call draws its own: nothing links two calls.
    assert privacy.deidentify(path)[0].SOPInstanceUID != privacy.deidentify(path)[0].SOPInstanceUID


def test_standard_and_class_uids_are_kept_everywhere():
    ds = Dataset()
    ds.SOPClassUID = "1.3.12.2.1107.5.9.1"  # a vendor's private SOP class: a class, though not standard
    ds.SOPInstanceUID = ROOT + "7.7"
    ds.CodingSchemeUID = "2.16.840.1.113883.6.96"  # SNOMED's registry UID names a scheme, not a person
    ds.FrameOfReferenceUID = "1.2.840.10008.1.4.1.1"  # Talairach: a well-known frame, same for everyone
    ds.ReferencedFrameOfReferenceUID = ROOT + "7.8"
    out, log = privacy.deidentify(ds, key=KEY)
    assert out.SOPClassUID == "1.3.12.2.1107.5.9.1" and out.CodingSchemeUID == "2.16.840.1.113883.6.96"
    assert out.FrameOfReferenceUID == "1.2.840.10008.1.4.1.1"
    assert UID_RE.match(out.SOPInstanceUID) and UID_RE.match(out.ReferencedFrameOfReferenceUID)
    assert log.actions == {"SOPInstanceUID": "uid-replaced", "ReferencedFrameOfReferenceUID": "uid-replaced"}


# -- dates -----------------------------------------------------------------------------------

def _days(da):
    return np.datetime64(f"{da[:4]}-{da[4:6]}-{da[6:8]}").astype(int)


def _utc_seconds(date, time, zone):
    """Seconds since 1970 of a DA + TM read in ``zone`` (``'+HHMM'``)."""
    sign = -1 if zone[0] == "-" else 1
    clock = int(time[:2]) * 3600 + int(time[2:4]) * 60 + float(time[4:] or 0)
    return int(_days(date)) * 86400 + clock - sign * (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60)


PAIRS = [("StudyDate", "StudyTime"), ("SeriesDate", "SeriesTime"), ("AcquisitionDate", "AcquisitionTime"),
         ("ContentDate", "ContentTime"), ("InstanceCreationDate", "InstanceCreationTime")]


def _moves(tree, rel):
    """How far each date+time of one output moved (seconds, in UTC), and its lone dates (days)."""
    out, _ = _output_for(tree, rel)
    original = pydicom.dcmread(tree["src"] / rel)
    zone = original.TimezoneOffsetFromUTC  # CT_small's -0500: the output's times are in UTC
    moves = [_utc_seconds(getattr(out, d), getattr(out, t), "+0000")
             - _utc_seconds(getattr(original, d), getattr(original, t), zone) for d, t in PAIRS]
    dt_old, dt_new = original.AcquisitionDateTime, out.AcquisitionDateTime  # its own zone, +0100
    moves.append(_utc_seconds(dt_new[:8], dt_new[8:-5], dt_new[-5:]) - _utc_seconds(dt_old[:8], dt_old[8:-5],
                                                                                   dt_old[-5:]))
    lone = _days(out.SourceImageSequence[0].AcquisitionDate) - _days(original.SourceImageSequence[0].AcquisitionDate)
    return out, moves, lone


def test_dates_and_times_move_by_one_offset_per_patient_and_keep_intervals(tree):
    a1, moves1, lone1 = _moves(tree, "patientA/scan1.dcm")
    a2, moves2, lone2 = _moves(tree, "patientA/scan2.dcm")
    b, moves_b, _ = _moves(tree, "patientB/scan_blorptash.dcm")
    assert len(set(moves1 + moves2)) == 1, "one offset per patient, to the second, across files"
    move = moves1[0]
    days, seconds = divmod(-move, 86400)
    assert 365 <= days <= 3652 and 1 <= seconds <= 86399  # no date and no time of day left as it was
    assert lone1 == lone2 == -days  # a date without its time moves by the whole days
    assert len(set(moves_b)) == 1 and moves_b[0] != move  # another patient, another offset
    assert a1.TimezoneOffsetFromUTC == "+0000" and a1.AcquisitionDateTime.endswith("+0000")
    for ds in (a1, a2, b):
        for d, t in PAIRS:
            assert re.fullmatch(r"\d{8}", getattr(ds, d)) and re.fullmatch(r"\d{6}(\.\d+)?", getattr(ds, t))


def test_date_offset_is_the_same_for_a_new_deidentifier_with_the_same_key(tree):
    a1, _ = _output_for(tree, "patientA/scan1.dcm")
    again, _ = privacy.deidentify(_planted(UIDS["sop1"], DATES[:2]), key=KEY)
    assert again.StudyDate == a1.StudyDate and again.StudyTime == a1.StudyTime
    assert again.SOPInstanceUID == a1.SOPInstanceUID


DUMMY_TEMPORAL = {"DA": "19000101", "TM": "000000", "DT": "19000101000000"}


def test_remove_date_policy_leaves_no_date_or_time():
    planted = _planted(UIDS["sop1"], DATES[:2])
    ds, log = privacy.deidentify(planted, key=KEY, date_policy="remove")
    stamped = [e for e in ds.iterall() if e.VR in DUMMY_TEMPORAL]
    # Removed, emptied, or the Basic Profile's dummy where an IOD needs a value (action D).
    assert stamped and all(e.is_empty or e.value == DUMMY_TEMPORAL[e.VR] for e in stamped)
    assert "TimezoneOffsetFromUTC" not in ds  # the zone goes with the dates
    assert log.actions["StudyTime"] == log.actions["SourceImageSequence[0].AcquisitionDate"] == "removed"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert "113107" not in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]


@pytest.mark.filterwarnings("ignore:Invalid value for VR DA")
def test_unparseable_dates_are_removed_not_kept():
    ds = Dataset()
    ds.PatientID = "X1"
    ds.StudyDate = "2020"  # a partial date cannot be shifted by days
    ds.AcquisitionDateTime = "20200110120000"
    out, log = privacy.deidentify(ds, key=KEY)
    assert out.StudyDate == "" and log.actions["StudyDate"] == "removed"
    assert re.fullmatch(r"\d{14}", out.AcquisitionDateTime) and out.AcquisitionDateTime[:8] < "20190110"


# -- policies and flags ----------------------------------------------------------------------

def test_patient_characteristics_option_keeps_exactly_its_attributes():
    planted = _planted(UIDS["sop1"], DATES[:2])
    kept, _ = privacy.deidentify(planted, key=KEY)
    assert kept.PatientAge == "096Y" and kept.PatientSex == "F"
    assert all(kept[k].value == planted[k].value for k in RETAINED)
    assert "Occupation" not in kept  # a characteristic? the option says no
    dropped, _ = privacy.deidentify(planted, key=KEY, age_policy="remove", sex_policy="remove")
    assert "PatientAge" not in dropped and dropped.PatientSex == ""
    assert not any(k in dropped for k in RETAINED)  # the option is off: its attributes go too
    assert [c.CodeValue for c in dropped.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    half, _ = privacy.deidentify(planted, key=KEY, age_policy="remove")
    assert "PatientAge" not in half and half.PatientSex == "F" and half.EthnicGroup == RETAINED["EthnicGroup"]


def test_kept_descriptors_are_cleaned_of_the_files_own_identifiers_and_flagged():
    planted = _planted(UIDS["sop1"], DATES[:2])
    planted.SeriesDescription = "Knee 17.05.1923 PHI-ID-937451 Fnordley"
    planted.ReasonForTheRequestedProcedure = "Pain since fall at Qwertzklinik, ref 55821"
    plain, _ = privacy.deidentify(planted, key=KEY)
    assert "StudyDescription" not in plain and "SeriesDescription" not in plain
    described, log = privacy.deidentify(planted, key=KEY, keep_descriptors=True)
    assert described.StudyDescription == "*** knee follow-up"  # the patient's name is in PatientName
    assert described.SeriesDescription == "Knee *** *** ***"
    assert described.ReasonForTheRequestedProcedure == "Pain since fall at ***, ref ***"
    # A name the file holds nowhere else cannot be recognised: kept, and the file is flagged.
    assert described.ImageComments == PHI_A["ImageComments"]
    assert log.actions["StudyDescription"] == "cleaned" and any("review" in flag for flag in log.flags)
    assert [c.CodeValue for c in described.DeidentificationMethodCodeSequence] == [
        "113100", "113105", "113107", "113108"]
    assert "PatientAddress" not in described  # patient free text is never a descriptor


def test_burned_in_annotation_flags(tree):
    _, yes = _output_for(tree, "patientA/scan1.dcm")
    _, no = _output_for(tree, "patientA/scan2.dcm")
    _, sc = _output_for(tree, "samples/SC_rgb_small_odd.dcm")
    _, mr = _output_for(tree, "samples/MR_small.dcm")
    assert any(f.startswith("BurnedInAnnotation=YES") for f in yes["flags"])
    assert no["flags"] == [] and mr["flags"] == []
    assert any("not stated" in f for f in sc["flags"])
    # scan1, patient B (also YES) and the SC sample; the skipped duplicate of scan1 counts for nothing.
    assert tree["summary"].flagged == 3


def test_reject_burned_in_writes_no_flagged_file_and_lists_them(tree, tmp_path, capsys):
    args = _parse(["deidentify", str(tree["src"]), str(tmp_path / "o"), "--reject-burned-in"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    # Stated YES (scan1, its copy, patient B) or not stated for a secondary capture: none written.
    rejected = ["patientA/scan1.dcm", "patientA/scan1_copy.dcm", "patientB/scan_blorptash.dcm",
                "samples/SC_rgb_small_odd.dcm"]
    assert "rejected for possible burned-in text: 4 file(s)" in printed
    assert all(f"  {rel}\n" in printed for rel in rejected)
    outputs = list((tmp_path / "o").rglob("*.dcm"))
    assert len(outputs) == len(SAMPLES) + 3 - 3
    assert all(pydicom.dcmread(p).get("BurnedInAnnotation") != "YES" for p in outputs)
    log = (tmp_path / "o" / privacy.LOG_NAME).read_text(encoding="utf-8")
    assert not any(Path(rel).stem in log for rel in rejected)  # listed on screen, never in the log
    with pytest.raises(privacy.BurnedInRejected, match="burned-in"):
        privacy.deidentify(_planted(UIDS["sop1"], DATES[:2]), key=KEY, reject_burned_in=True)
    with pytest.raises(DataError, match="scan1.dcm"):
        privacy.deidentify_tree(tree["src"] / "patientA" / "scan1.dcm", tmp_path / "one", reject_burned_in=True)
    assert not list((tmp_path / "one").rglob("*.dcm"))


def test_pixel_data_unchanged_and_outputs_readable(tree):
    for rel in ["patientA/scan1.dcm", "patientB/scan_blorptash.dcm", *(f"samples/{n}" for n in SAMPLES)]:
        original = pydicom.dcmread(tree["src"] / rel)
        out, _ = _output_for(tree, rel)
        assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        if "PixelData" in original:
            assert out.PixelData == original.PixelData
            np.testing.assert_array_equal(out.pixel_array, original.pixel_array)


# -- the input stays untouched, the output stays apart -----------------------------------------

def test_input_files_are_unchanged(tree):
    assert _hashes(tree["src"]) == tree["before"]


def test_file_meta_follows_the_new_sop_instance_uid_even_when_it_disagreed():
    planted = _planted(UIDS["sop1"], DATES[:2])
    planted.file_meta.MediaStorageSOPInstanceUID = ROOT + "6.6"  # broken input: meta and data set differ
    out, log = privacy.deidentify(planted, key=KEY)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.ImplementationClassUID == planted.file_meta.ImplementationClassUID
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert log.actions["file_meta.SourceApplicationEntityTitle"] == "removed"


def test_input_dataset_object_is_unchanged():
    planted = _planted(UIDS["sop1"], DATES[:2])
    before = copy.deepcopy(planted)
    privacy.deidentify(planted, key=KEY)
    assert planted == before and planted.file_meta == before.file_meta
    assert planted.preamble == before.preamble


def test_refuses_output_inside_on_or_around_the_input(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), src / "a.dcm")
    for out in (src, src / "sub", tmp_path):
        with pytest.raises(ConfigError, match="out_path"):
            privacy.deidentify_tree(src, out, key=KEY)
    with pytest.raises(ConfigError, match="out_path"):
        privacy.deidentify_tree(src / "a.dcm", src, key=KEY)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.dcm", "in"]


def test_non_dicom_and_duplicates_are_skipped_with_a_reason(tree):
    summary, log = tree["summary"], tree["log"]
    assert summary.written == 3 + len(SAMPLES) and summary.skipped == 2
    reasons = sorted(s["reason"] for s in log["skipped"])
    assert reasons[0].startswith("duplicate SOPInstanceUID") and reasons[1].startswith("not a DICOM file")
    assert all(set(s) == {"index", "source", "reason"} for s in log["skipped"])


def test_a_single_unreadable_file_raises_data_error_naming_it(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_bytes(b"not a DICOM file at all" * 10)
    with pytest.raises(DataError, match="notes.dcm"):
        privacy.deidentify_tree(bad, tmp_path / "out", key=KEY)
    with pytest.raises(DataError, match="notes.dcm"):
        privacy.deidentify(bad)
    with pytest.raises(DataError, match="missing.dcm"):
        privacy.deidentify_tree(tmp_path / "missing.dcm", tmp_path / "out")


def test_a_single_file_and_hashed_folder_names(tmp_path):
    src = tmp_path / "in" / "Zyxwvut_Quirinus"
    src.mkdir(parents=True)
    _planted(UIDS["sop1"], DATES[:2]).save_as(src / "x.dcm", enforce_file_format=True)
    single = privacy.deidentify_tree(src / "x.dcm", tmp_path / "one", key=KEY)
    assert single.written == 1 and len(list((tmp_path / "one").glob("2.25.*.dcm"))) == 1
    privacy.deidentify_tree(tmp_path / "in", tmp_path / "hashed", key=KEY, hash_folder_names=True)
    written = [p.relative_to(tmp_path / "hashed").as_posix() for p in (tmp_path / "hashed").rglob("*")]
    assert len(written) == 3 and not any("Zyxwvut" in w for w in written)


def test_reader_warnings_are_counted_not_echoed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(get_testdata_file("rtdose.dcm", download=False), src / "dose.dcm")
    bad_uid = "1.2.123.456.78.9.0123.4567.89012345678901"  # invalid (leading zero): pydicom warns, quoting it
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        summary = privacy.deidentify_tree(src, tmp_path / "out", key=KEY)
    assert summary.written == 1 and not any(bad_uid in str(w.message) for w in seen)
    assert any("malformed" in flag for flag in summary.flag_counts)
    (out,) = (tmp_path / "out").rglob("*.dcm")
    assert bad_uid.encode() not in out.read_bytes()


def test_dicomdir_skipped_and_patient_id_folders_hashed(tmp_path):
    dicomdir = get_testdata_file("DICOMDIR", download=False)
    if dicomdir is None:
        pytest.skip("pydicom's bundled DICOMDIR sample is not installed")
    src = Path(dicomdir).parent  # its sub-folders are named after patient IDs, as on many CDs
    ids = [p.name for p in src.iterdir() if p.is_dir()]
    summary = privacy.deidentify_tree(src, tmp_path / "out", key=KEY, hash_folder_names=True)
    assert summary.written > 0 and any(r.startswith("DICOMDIR") for r in summary.skip_reasons)
    written = "\n".join(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*"))
    assert ids and not any(i in written for i in ids)
    with pytest.raises(DataError, match="DICOMDIR"):
        privacy.deidentify_tree(dicomdir, tmp_path / "one", key=KEY)


@pytest.mark.parametrize("kwargs", [{"date_policy": "blur"}, {"age_policy": "drop"}, {"sex_policy": None},
                                    {"keep_descriptors": "yes"}, {"key": 123}, {"key": b""}])
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        privacy.Deidentifier(**kwargs)


def test_every_option_keyword_is_a_dicom_keyword():
    # A misspelt keyword would never match, so its attribute would silently get another action.
    from tinycnn.privacy import profile, walker

    tables = (set(profile.PATIENT_CHARACTERISTICS) | profile.CLEAN_DESCRIPTORS | profile.NOT_MODIFIED
              | profile.ALSO_MODIFIED | walker._META_KEEP)
    unknown = [kw for kw in tables if pydicom.datadict.tag_for_keyword(kw) is None]
    assert unknown == []


def test_repr_never_shows_the_key():
    assert KEY.decode() not in repr(privacy.Deidentifier(KEY))


@pytest.mark.parametrize("missing", ["pydicom", "dicomanonymizer"])
def test_import_without_the_dicom_extra_then_a_clear_error(missing, tmp_path):
    # dicom-anonymizer holds the table: without it nothing may be written half de-identified.
    shutil.copy(get_testdata_file("CT_small.dcm", download=False), tmp_path / "x.dcm")
    code = (f"import sys; sys.modules[{missing!r}] = None\n"
            "import tinycnn.privacy as p\n"
            "try:\n    p.deidentify(sys.argv[1])\n"
            "except ImportError as e:\n    print('ERR', e)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.dcm")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ERR" in result.stdout and "pip install tinycnn[dicom]" in result.stdout


# -- command line ----------------------------------------------------------------------------

def _parse(argv):
    parser = argparse.ArgumentParser(prog="tinycnn")
    privacy.add_cli(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_writes_reports_and_links_runs_by_key_file(tree, tmp_path, capsys):
    key_file = tmp_path / "site.key"
    key_file.write_bytes(KEY + b"\n")
    args = _parse(["deidentify", str(tree["src"]), str(tmp_path / "o1"), "--key-file", str(key_file),
                   "--remove-age", "--date-policy", "remove"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert f"written: {3 + len(SAMPLES)} file(s)" in printed and "skipped: 2 file(s)" in printed
    assert "flagged: 3 file(s)" in printed and "BurnedInAnnotation=YES" in printed
    # The same key file gives the same names as the library run with that key.
    names = sorted(p.relative_to(tmp_path / "o1").as_posix() for p in (tmp_path / "o1").rglob("*.dcm"))
    assert names == sorted(tree["outputs"])
    scan = pydicom.dcmread(tmp_path / "o1" / _output_for(tree, "patientA/scan1.dcm")[1]["output"])
    assert "PatientAge" not in scan and scan.StudyDate == "" and scan.PatientSex == "F"
    assert "random" not in printed and "sub-folder names: copied" in printed


def test_cli_errors_return_nonzero_without_traceback(tree, tmp_path, capsys):
    # What the user typed is wrong: a usage error, exit 2, naming what to fix.
    args = _parse(["deidentify", str(tree["src"]), str(tree["src"] / "out")])
    assert args.func(args) == 2
    assert "must lie outside" in capsys.readouterr().err
    args = _parse(["deidentify", str(tree["src"]), str(tmp_path / "o"), "--key-file", str(tmp_path / "none")])
    assert args.func(args) == 2
    assert "--key-file" in capsys.readouterr().err
    # The data cannot be read: exit 1.
    (tmp_path / "bad.dcm").write_bytes(b"no DICOM here")
    args = _parse(["deidentify", str(tmp_path / "bad.dcm"), str(tmp_path / "o")])
    assert args.func(args) == 1
    assert "bad.dcm" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tree["src"] / "out").exists()
