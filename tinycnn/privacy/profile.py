"""PS3.15 Table E.1-1: what the confidentiality profile does to each attribute, under tinycnn's options.

Where the table comes from
--------------------------
*Basic Profile column* (every row of Table E.1-1, edition :data:`EDITION`): from
`dicom-anonymizer <https://github.com/KitwareMedical/dicom-anonymizer>`_ (Kitware, BSD-3), whose
tables are scraped from the standard's own pages and ship one module per edition (2023, 2024b,
2026c). tinycnn uses only that data, not its anonymizer. Private attributes (odd groups) are not in
its table: tinycnn removes them before any lookup.

*Option columns* (the three options tinycnn can declare): no permissively licensed, maintained
package carries them, so they are written below, from the 2024b edition of the standard; each row
is checked in the tests against an independent machine-readable copy of the 2024b table. Rows that
newer editions added get their Basic Profile action, which is never less strict than an option.

Action codes (PS3.15 E.1.1): ``X`` remove, ``Z`` empty, ``D`` dummy value, ``U`` replace UID,
``K`` keep, ``C`` clean; a combination such as ``X/Z/D`` chooses by the attribute's type in the IOD.
"""

import functools
from dataclasses import dataclass

EDITION = "2026c"

# dicom-anonymizer's list names and the table's action codes.
_LISTS = {"X_TAGS": "X", "Z_TAGS": "Z", "D_TAGS": "D", "U_TAGS": "U", "Z_D_TAGS": "Z/D", "X_Z_TAGS": "X/Z",
          "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*"}

# A combination picks its action by the attribute's type in the IOD (Type 3 / 2 / 1). tinycnn does
# not hold every IOD's module tables, so it takes the action that keeps the object valid whatever
# the type: an empty or dummy value is allowed for Type 3 too. Each of them drops the original.
RESOLVED = {"X": "X", "Z": "Z", "D": "D", "U": "U", "X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D",
            "X/Z/U*": "U*"}

# Retain Patient Characteristics Option (113108), column "Rtn. Pat. Chars. Opt.".
PATIENT_CHARACTERISTICS = {
    "PatientAge": "K", "PatientSex": "K", "PatientSexNeutered": "K", "PatientSize": "K", "PatientWeight": "K",
    "EthnicGroup": "K", "SmokingStatus": "K", "PregnancyStatus": "K", "SelectorASValue": "K",
    "Allergies": "C", "PatientState": "C", "PreMedication": "C", "SpecialNeeds": "C",
}

# Retain Longitudinal Temporal Information with Modified Dates Option (113107), column "Rtn. Long.
# Modif. Dates Opt.": every DA, DT and TM attribute of the table, except these three...
NOT_MODIFIED = frozenset({"PatientBirthDate", "PatientBirthTime", "GPSTimeStamp"})
# ... plus three timestamps of other VRs.
ALSO_MODIFIED = frozenset({"TimezoneOffsetFromUTC", "CertifiedTimestamp", "FrameOriginTimestamp"})

# Clean Descriptors Option (113105), column "Clean Desc. Opt.".
CLEAN_DESCRIPTORS = frozenset("""
    AcquisitionComments AcquisitionDeviceProcessingDescription AcquisitionFieldOfViewLabel
    AcquisitionProtocolDescription AdditionalPatientHistory AdmittingDiagnosesCodeSequence
    AdmittingDiagnosesDescription Allergies AnnotationGroupDescription AnnotationGroupLabel BeamDescription
    BolusDescription ClinicalTrialSeriesDescription ClinicalTrialTimePointDescription CommentsOnRadiationDose
    CommentsOnThePerformedProcedureStep CompensatorDescription ConceptualVolumeCombinationDescription
    ConceptualVolumeDescription ContainerDescription ContrastBolusAgent ContributionDescription
    DecompositionDescription DerivationDescription DeviceSettingDescription DischargeDiagnosisDescription
    DisplacementReferenceLabel DoseReferenceDescription EntityDescription EntityLabel EntityLongLabel EntityName
    EquipmentFrameOfReferenceDescription FilterLookupTableDescription FixationDeviceDescription
    FractionGroupDescription FractionationNotes FrameComments IdentifyingComments ImageComments
    ImagingServiceRequestComments Impressions InterlockDescription InterlockOriginDescription
    InterpretationDiagnosisDescription InterpretationText LabelText LongDeviceDescription MakerNote MedicalAlerts
    MultienergyAcquisitionDescription Occupation PatientComments PatientSetupPhotoDescription PatientState
    PatientTreatmentPreparationMethodDescription PatientTreatmentPreparationProcedureParameterDescription
    PerformedProcedureStepDescription PositionAcquisitionTemplateDescription PositionAcquisitionTemplateName
    PrescriptionDescription PrescriptionNotes PrescriptionNotesSequence PriorTreatmentDoseDescription
    ProtocolName PyramidDescription PyramidLabel ROIDescription ROIGenerationDescription ROIName
    ROIObservationDescription ROIObservationLabel RTPhysicianIntentNarrative RTPlanDescription RTPlanLabel
    RTPlanName RTPrescriptionLabel RTToleranceSetLabel RTTreatmentApproachLabel RadiationDoseIdentificationLabel
    RadiationDoseInVivoMeasurementLabel RadiationGenerationModeDescription RadiationGenerationModeLabel
    ReasonForOmissionDescription ReasonForRequestedProcedureCodeSequence ReasonForStudy ReasonForSuperseding
    ReasonForTheAttributeModification ReasonForTheImagingServiceRequest ReasonForTheRequestedProcedure
    ReasonForVisit ReasonForVisitCodeSequence RequestAttributesSequence RequestedContrastAgent
    RequestedProcedureComments RequestedProcedureDescription RequestedSeriesDescription
    RespiratoryMotionCompensationTechniqueDescription ResultsComments ScheduledProcedureStepDescription
    SelectorLOValue SelectorLTValue SelectorSHValue SelectorSTValue SelectorUTValue SeriesDescription
    ServiceEpisodeDescription SetupTechniqueDescription ShieldingDeviceDescription SpecimenDetailedDescription
    SpecimenShortDescription StructureSetDescription StructureSetLabel StructureSetName StudyComments
    StudyDescription TreatmentPositionGroupLabel TreatmentSite TreatmentSites TreatmentTechniqueNotes
    TreatmentToleranceViolationDescription UserContentLabel UserContentLongLabel VisitComments
    WaveformFilterDescription
""".split())

# DICOM code meanings (PS3.16 CID 7050) written into DeidentificationMethodCodeSequence.
CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
}


@dataclass(frozen=True)
class Options:
    """The profile options applied (and declared in (0012,0064)).

    Attributes
    ----------
    modified_dates, patient_characteristics, clean_descriptors : bool
        Retain Longitudinal Temporal Information with Modified Dates; Retain Patient
        Characteristics; Clean Descriptors.
    """

    modified_dates: bool = True
    patient_characteristics: bool = True
    clean_descriptors: bool = False

    def codes(self):
        """``(code value, code meaning)`` of the profile and of each option applied, in code order."""
        names = ["basic", "clean_descriptors", "modified_dates", "patient_characteristics"]
        return [CODES[n] for n in names if n == "basic" or getattr(self, n)]


def _import_tables():
    try:
        from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
    except ImportError as exc:
        raise ImportError("tinycnn.privacy needs dicom-anonymizer for the PS3.15 table: "
                          "pip install tinycnn[dicom]") from exc
    try:
        return dicom_anonymization_database_selector(f"dicomfields_{EDITION}")
    except (ValueError, AttributeError) as exc:
        raise ImportError(f"the installed dicom-anonymizer has no table of edition {EDITION}: "
                          "pip install 'dicom-anonymizer>=2.0,<3'") from exc


@functools.lru_cache(maxsize=1)
def basic_profile():
    """The Basic Profile column: ``({tag: code}, [(group, element, group_mask, element_mask, code)])``.

    Tags are ints (``0xGGGGEEEE``); the second list holds the repeating-group rows (curves,
    overlays). Codes are the table's, combinations included (``'X/Z/D'``).
    """
    exact, masked = {}, []
    for name, code in _LISTS.items():
        for row in _import_tables()[name]:
            if len(row) == 2:
                exact[(row[0] << 16) | row[1]] = code
            else:
                masked.append((*row, code))
    return exact, masked


@functools.lru_cache(maxsize=1)
def _option_tags():
    from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

    exact, _ = basic_profile()
    dated = set()
    for tag in exact:
        keyword = keyword_for_tag(tag)
        try:
            temporal = dictionary_VR(tag) in ("DA", "DT", "TM")
        except KeyError:
            continue  # a row newer than pydicom's dictionary: no option applies to it
        if (temporal and keyword not in NOT_MODIFIED) or keyword in ALSO_MODIFIED:
            dated.add(tag)
    return ({tag_for_keyword(k): a for k, a in PATIENT_CHARACTERISTICS.items()}, frozenset(dated),
            frozenset(tag_for_keyword(k) for k in CLEAN_DESCRIPTORS))


def basic_action(tag):
    """The Basic Profile code of ``tag`` (int), or None when the table does not list it."""
    exact, masked = basic_profile()
    if tag in exact:
        return exact[tag]
    group, element = tag >> 16, tag & 0xFFFF
    for g, e, gmask, emask, code in masked:
        if group & gmask == g and element & emask == e:
            return code
    return None


def action(tag, options):
    """What the profile, with ``options``, does to ``tag``.

    Parameters
    ----------
    tag : int
        ``0xGGGGEEEE``.
    options : Options

    Returns
    -------
    (action, basic) : tuple of str, or (None, None) when the table does not list ``tag``
        ``action`` is the option's ``'K'`` or ``'C'`` where an applied option overrides the
        Basic Profile, else the resolved Basic Profile action (``'X'``, ``'Z'``, ``'D'``, ``'U'``
        or ``'U*'``: keep the sequence, replace the UIDs it contains). ``basic`` is always the
        resolved Basic Profile action, for a ``'C'`` the caller cannot carry out (binary values).
    """
    code = basic_action(tag)
    if code is None:
        return None, None
    basic = RESOLVED[code]
    characteristics, dated, descriptors = _option_tags()
    if options.patient_characteristics and tag in characteristics:
        return characteristics[tag], basic
    if options.modified_dates and tag in dated:
        return "C", basic
    if options.clean_descriptors and tag in descriptors:
        return "C", basic
    return basic, basic
