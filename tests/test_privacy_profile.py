"""De-identification against PS3.15 Table E.1-1 itself: every row of it, and identifiers planted deep in real samples.

The table is checked against an independent machine-readable copy of the standard's Table E.1-1
(edition 2024b, from the innolitics/dicom-standard project) in ``../shared/reference/``; those tests
skip when it is absent. The nested-sample tests need only pydicom's own test files.
"""

import datetime
import json
from pathlib import Path

import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402

from tinycnn import privacy  # noqa: E402
from tinycnn.privacy import profile  # noqa: E402

REFERENCE = (Path(__file__).resolve().parents[1].parent / "shared" / "reference"
             / "dicom_confidentiality_profile.json")
KEY = b"table-test-key-not-secret"
ROOT = "1.2.826.0.1.3680043.10.937."  # an obviously fake root for planted UIDs
CT = "1.2.840.10008.5.1.4.1.1.2"
# The table's pattern rows, as one concrete tag each (the private row: a block in group 0009).
PATTERNS = {"(50XX,XXXX)": 0x50003000, "(60XX,4000)": 0x60004000, "(60XX,3000)": 0x60003000,
            "(GGGG,EEEE) WHERE GGGG IS ODD": 0x00091001}
PATTERN_VRS = {0x50003000: "OB", 0x60004000: "LT", 0x60003000: "OB", 0x00091001: "LO"}
TEMPORAL = ("DA", "DT", "TM")


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.exists():
        pytest.skip(f"{REFERENCE} is absent: the independent copy of PS3.15 Table E.1-1 is not on this machine")
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def _tag(row):
    return PATTERNS.get(row["tag"]) or int(row["id"], 16)


def _vr(tag):
    return PATTERN_VRS.get(tag) or dictionary_VR(tag).split(" or ")[0]


# -- the table tinycnn uses is the standard's ------------------------------------------------

def test_basic_profile_column_matches_the_standard_row_by_row(reference):
    wrong = [(r["tag"], r["basicProfile"], profile.basic_action(_tag(r))) for r in reference
             if r["tag"] != "(GGGG,EEEE) WHERE GGGG IS ODD" and profile.basic_action(_tag(r)) != r["basicProfile"]]
    assert wrong == []
    assert len(reference) == 621  # 617 attributes and 4 patterns in edition 2024b
    exact, _ = profile.basic_profile()
    assert len(exact) > 617  # edition 2026c adds rows; none of the 2024b ones changed above


def test_option_columns_match_the_standard_row_by_row(reference):
    options = profile.Options(modified_dates=True, patient_characteristics=True, clean_descriptors=True)
    on = {"rtnPatCharsOpt": profile.Options(False, True, False),
          "rtnLongModifDatesOpt": profile.Options(True, False, False),
          "cleanDescOpt": profile.Options(False, False, True)}
    for column, only in on.items():
        for row in reference:
            tag = _tag(row)
            if tag >> 16 & 1:
                continue  # private attributes are removed before any lookup
            action, basic = profile.action(tag, only)
            expected = row.get(column) or profile.RESOLVED[row["basicProfile"]]
            assert action == expected, (column, row["tag"], row["name"], action, expected)
            assert basic == profile.RESOLVED[row["basicProfile"]]
    # With all three on, a patient characteristic is kept even where a descriptor would be cleaned.
    assert profile.action(tag_for_keyword("PatientAge"), options)[0] == "K"


# -- one file per row: no planted value survives ---------------------------------------------

def _marker(i, vr):
    """A recognisable value of VR ``vr`` for row ``i``, and the bytes that betray it."""
    text = f"MRK{i:03d}QZ"
    day = datetime.date(1931, 1, 1) + datetime.timedelta(days=37 * i)  # 37: rows never share a date
    clock = f"{i % 24:02d}{(7 * i) % 60:02d}{(13 * i) % 60:02d}.{i:06d}"
    values = {"PN": f"{text}^Quirinus", "DA": day.strftime("%Y%m%d"), "TM": clock,
              "DT": day.strftime("%Y%m%d") + clock, "AS": f"{100 + i % 900:03d}W", "DS": f"9{i:03d}.5",
              "IS": f"9{i:03d}7", "UI": f"{ROOT}9.{i}", "UR": f"https://{text.lower()}.example/",
              "US": 40000 + i}
    if vr in ("OB", "OW", "UN"):
        return text.encode() * 2, text.encode()
    value = values.get(vr, text)
    return value, (text.encode() if vr == "PN" else str(value).encode())


def _row_dataset(i, row):
    """A small data set holding the marker of row ``i`` in its attribute; the marker's bytes."""
    tag = _tag(row)
    vr = _vr(tag)
    ds = Dataset()
    ds.PatientID, ds.PatientName = "ROW-PATIENT", "Rowpatient^Test"
    ds.SOPClassUID, ds.SOPInstanceUID = CT, f"{ROOT}1.{i}"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = f"{ROOT}2.1", f"{ROOT}3.1", "CT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    value, needle = _marker(i, vr)
    if vr == "SQ":
        code = Dataset()  # a coded item, as most sequences hold, carrying the marker
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "99MRK", f"{value} meaning"
        ds.add_new(tag, "SQ", Sequence([code]))
    elif tag >> 16 == 0x0002:  # MediaStorageSOPInstanceUID: pydicom writes it from SOPInstanceUID
        ds.file_meta.add_new(tag, vr, value)
        ds.SOPInstanceUID = value
    elif tag >> 16 & 1:
        ds.private_block(tag >> 16, "MRK PRIVATE", create=True).add_new(tag & 0xFF, vr, value)
    else:
        ds.add_new(tag, vr, value)
    return ds, vr, needle


@pytest.fixture(scope="module")
def rows(reference, tmp_path_factory):
    """Every row of the table planted in a file of its own, then de-identified twice.

    ``basic``: the Basic Profile alone (dates removed, no characteristics, no descriptors);
    ``default``: tinycnn's defaults (modified dates and patient characteristics retained).
    """
    base = tmp_path_factory.mktemp("rows")
    (base / "in").mkdir()
    planted, commands = [], {}
    for i, row in enumerate(reference):
        ds, vr, needle = _row_dataset(i, row)
        if _tag(row) >> 16 == 0:
            commands[i] = ds  # command-set attributes cannot be stored in a file: de-identified in memory
        else:
            ds.save_as(base / "in" / f"row{i:03d}.dcm", enforce_file_format=True)
        planted.append((i, row, vr, needle))
    runs = {"basic": dict(date_policy="remove", age_policy="remove", sex_policy="remove"), "default": {}}
    out = {}
    for name, policies in runs.items():
        privacy.deidentify_tree(base / "in", base / name, key=KEY, **policies)
        log = json.loads((base / name / privacy.LOG_NAME).read_text(encoding="utf-8"))
        deid = privacy.Deidentifier(KEY, **policies)
        by_source = {e["source"]: e for e in log["files"]}
        data = {i: (base / name / by_source[deid.source_id(f"row{i:03d}.dcm")]["output"]).read_bytes()
                for i, *_ in planted if i not in commands}
        datasets = {i: pydicom.dcmread(base / name / by_source[deid.source_id(f"row{i:03d}.dcm")]["output"])
                    for i, *_ in planted if i not in commands}
        for i, ds in commands.items():
            datasets[i], _ = deid.deidentify(ds)
            data[i] = datasets[i].to_json().encode()
        out[name] = {"data": data, "datasets": datasets, "log": (base / name / privacy.LOG_NAME).read_bytes(),
                     "inputs": base / "in", "commands": commands}
    return planted, out


def _survivors(planted, run):
    """Rows whose marker is still in their output file (bytes, any case) or in the log."""
    found = []
    for i, row, vr, needle in planted:
        if vr == "US":  # two bytes could match by chance: look at the value instead
            if any(e.tag == _tag(row) and e.value == 40000 + i for e in run["datasets"][i].iterall()):
                found.append(row["tag"])
        elif needle.lower() in run["data"][i].lower() or needle.lower() in run["log"].lower():
            found.append(row["tag"])
    return found


def test_every_row_of_the_basic_profile_leaves_no_trace(rows, reference):
    planted, out = rows
    inputs, commands = out["basic"]["inputs"], out["basic"]["commands"]
    assert all(needle in (inputs / f"row{i:03d}.dcm").read_bytes() for i, _, vr, needle in planted
               if i not in commands and vr != "US")  # the markers really are in the inputs
    survivors = _survivors(planted, out["basic"])
    # README, Guarantees: "N of M rows" is len(reference) - len(survivors) of len(reference).
    print(f"\nBasic Profile: {len(reference) - len(survivors)} of {len(reference)} rows leave no trace")
    assert survivors == []


def test_with_the_default_options_only_the_retained_characteristics_survive(rows, reference):
    planted, out = rows
    kept = sorted(r["tag"] for r in reference if r.get("rtnPatCharsOpt") == "K")
    assert sorted(_survivors(planted, out["default"])) == kept
    assert len(kept) == 9


def test_every_date_and_time_row_is_shifted_under_the_default_options(rows):
    planted, out = rows
    for i, row, vr, needle in planted:
        if vr not in TEMPORAL or row.get("rtnLongModifDatesOpt") != "C":
            continue
        ds = out["default"]["datasets"][i]
        tag = _tag(row)
        values = [e.value for e in ds.iterall() if e.tag == tag]
        # Changed and still a date or time of its VR (a shifted value, not an emptied one).
        assert values and values[0] and str(values[0]) != needle.decode(), row["name"]
        assert len(str(values[0])) >= {"DA": 8, "TM": 6, "DT": 14}[vr], row["name"]


def test_declared_options_match_what_was_done(rows):
    _, out = rows
    basic, default = out["basic"]["datasets"][0], out["default"]["datasets"][0]
    assert [c.CodeValue for c in basic.DeidentificationMethodCodeSequence] == ["113100"]
    assert [c.CodeValue for c in default.DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
    assert basic.LongitudinalTemporalInformationModified == "REMOVED"
    assert default.LongitudinalTemporalInformationModified == "MODIFIED"


# -- identifiers planted in nested sequences of real samples ---------------------------------

PLANTED = {
    "name": "Quellbright^Osric", "institution": "Qwertzklinik Vexhollow", "station": "STATION-QX9",
    "requested": "REQ-PHI-77812", "step": "SPS-PHI-11873", "accession": "ACC-PHI-55821",
    "reason": "Fell off the Vexhollow bridge", "address": "9 Grimsditch Row", "machine": "LINAC-VEXHOLLOW",
    "serial": "SN-PHI-44120", "text": "Zyxwvut Quirinus reports knee pain", "observer": "Observerix^Gundula",
    "org": "Verifier Org Vexhollow", "other_id": "PHI-OTHER-28816", "label": "Quirinus plan",
    "uid": ROOT + "77.1", "date": "19230517", "time": "031547.123456",
}


# The words of PLANTED that no sample holds by chance: none may survive, even inside a cleaned text.
DISTINCTIVE = ["Quellbright", "Osric", "Qwertzklinik", "Vexhollow", "Grimsditch", "Zyxwvut", "Quirinus",
               "Observerix", "Gundula"]


def _item(**attributes):
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _code(value, meaning):
    return _item(CodeValue=value, CodingSchemeDesignator="DCM", CodeMeaning=meaning)


def _plant_common(ds):
    """Identifiers two and three levels deep in sequences the profile keeps (and cleans inside)."""
    p = PLANTED
    ds.PatientName = "Zyxwvut^Quirinus"  # so that cleaning kept descriptors knows the name
    request = _item(AccessionNumber=p["accession"], RequestedProcedureID=p["requested"],
                    StudyInstanceUID=p["uid"], ReasonForTheRequestedProcedure=p["reason"],
                    RequestingPhysician=p["name"])
    step = _item(ScheduledProcedureStepID=p["step"], ScheduledPerformingPhysicianName=p["name"],
                 ScheduledProcedureStepStartDate=p["date"], ScheduledProcedureStepStartTime=p["time"])
    request.RequestAttributesSequence = [step]
    ds.ReferencedRequestSequence = [request]
    series = _item(SeriesInstanceUID=p["uid"], InstitutionName=p["institution"], StationName=p["station"],
                   OperatorsName=p["name"], PerformedProcedureStepStartDate=p["date"])
    series.OtherPatientIDsSequence = [_item(PatientID=p["other_id"], IssuerOfPatientID=p["institution"])]
    ds.ReferencedSeriesSequence = [series]


def _plant_ct(ds):
    _plant_common(ds)
    source = _item(ReferencedSOPClassUID=CT, ReferencedSOPInstanceUID=p_uid(2), PerformingPhysicianName=PLANTED["name"])
    source.PurposeOfReferenceCodeSequence = [_code("121320", PLANTED["label"])]
    ds.SourceImageSequence = [source]
    ds.ProcedureCodeSequence = [_item(CodeValue="CTKNEE", CodingSchemeDesignator="99LOCAL",
                                      CodeMeaning="CT knee", ContextUID=PLANTED["uid"])]
    return ds


def _plant_mr(ds):
    _plant_common(ds)
    context = _item(ValueType="PNAME", PersonName=PLANTED["observer"])
    context.ConceptNameCodeSequence = [_code("121008", "Person Observer Name")]
    ds.AcquisitionContextSequence = [context]
    ds.ReferencedPatientSequence = [_item(ReferencedSOPClassUID=CT, ReferencedSOPInstanceUID=p_uid(3))]
    return ds


def _plant_rtplan(ds):
    _plant_common(ds)
    ds.RTPlanLabel, ds.RTPlanName, ds.ReviewerName = PLANTED["label"], PLANTED["label"], PLANTED["name"]
    beam = ds.BeamSequence[0]
    beam.InstitutionName, beam.InstitutionAddress = PLANTED["institution"], PLANTED["address"]
    beam.TreatmentMachineName, beam.DeviceSerialNumber = PLANTED["machine"], PLANTED["serial"]
    beam.BeamDescription = PLANTED["reason"]
    setup = ds.PatientSetupSequence[0]
    setup.SetupTechniqueDescription = PLANTED["text"]
    setup.FixationDeviceSequence = [_item(FixationDeviceDescription=PLANTED["reason"])]
    return ds


def _plant_sr(ds):
    _plant_common(ds)
    p = PLANTED
    text = _item(RelationshipType="CONTAINS", ValueType="TEXT", TextValue=p["text"])
    text.ConceptNameCodeSequence = [_code("121071", "Finding")]
    person = _item(RelationshipType="HAS OBS CONTEXT", ValueType="PNAME", PersonName=p["observer"])
    person.ConceptNameCodeSequence = [_code("121008", "Person Observer Name")]
    when = _item(RelationshipType="CONTAINS", ValueType="DATE", Date=p["date"])
    uid = _item(RelationshipType="CONTAINS", ValueType="UIDREF", UID=p["uid"])
    deeper = _item(RelationshipType="CONTAINS", ValueType="CONTAINER", ContinuityOfContent="SEPARATE")
    deeper.ContentSequence = [text, uid]
    ds.ContentSequence = [*ds.ContentSequence, person, when, deeper]
    ds.VerifyingObserverSequence = [_item(VerifyingObserverName=p["observer"], VerifyingOrganization=p["org"],
                                          VerificationDateTime=p["date"] + "031547")]
    ds.AuthorObserverSequence = [_item(PersonName=p["name"], InstitutionName=p["institution"])]
    return ds


def p_uid(n):
    return f"{ROOT}77.{n}"


PLANTED_PER_SAMPLE = {"CT_small.dcm": 13, "MR_small.dcm": 13, "rtplan.dcm": 16, "test-SR.dcm": 14}
SAMPLES = {"CT_small.dcm": _plant_ct, "MR_small.dcm": _plant_mr, "rtplan.dcm": _plant_rtplan,
           "test-SR.dcm": _plant_sr}


@pytest.mark.parametrize("sample", SAMPLES)
def test_identifiers_planted_in_nested_sequences_of_real_samples_do_not_survive(sample, tmp_path):
    path = get_testdata_file(sample, download=False)
    if path is None:
        pytest.skip(f"pydicom's bundled sample {sample} is not installed")
    ds = SAMPLES[sample](pydicom.dcmread(path))
    ds.save_as(tmp_path / "in.dcm", enforce_file_format=True)
    needles = [v for v in PLANTED.values()] + [p_uid(2), p_uid(3)]
    planted_bytes = (tmp_path / "in.dcm").read_bytes()
    # They are in the input (README: 56 identifiers over the four samples).
    assert sum(v.encode() in planted_bytes for v in needles) == PLANTED_PER_SAMPLE[sample]
    for policies in ({}, {"keep_descriptors": True}):
        out, log = privacy.deidentify(tmp_path / "in.dcm", key=KEY, **policies)
        out.save_as(tmp_path / "out.dcm", enforce_file_format=True)
        data = (tmp_path / "out.dcm").read_bytes()
        text = data + json.dumps(log.to_dict()).encode()
        leaks = [w for w in [*needles, *DISTINCTIVE] if w.encode() in text]
        assert leaks == [], (sample, policies, leaks)
    if sample == "test-SR.dcm":
        # ContentSequence's action is D: its items stay (a dummy tree), its values do not.
        assert len(out.ContentSequence) == len(ds.ContentSequence)
        assert out.VerifyingObserverSequence[0].VerifyingObserverName == "ANONYMOUS"
    assert keyword_for_tag(0x00120064) in out  # DeidentificationMethodCodeSequence
