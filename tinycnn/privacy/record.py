"""What is recorded about one data set: the value-free log, the flags, and reading a file safely."""

from collections import Counter
from dataclasses import dataclass, field

from ..errors import DataError

# Modalities that often burn patient text into the pixels (ultrasound, secondary capture, photos...).
_BURN_IN_MODALITIES = frozenset({"US", "SC", "XC", "ES", "OT", "DOC", "GM", "OP", "SM"})


@dataclass
class DeidLog:
    """What :meth:`Deidentifier.deidentify` did to one data set, without any original value.

    Attributes
    ----------
    actions : dict of str to str
        Attribute path (keyword, or ``(gggg,eeee)`` for private and unknown tags; nested items as
        ``SequenceKeyword[i].Keyword``; file meta as ``file_meta.Keyword``) to its action:
        ``'removed'`` (deleted, or emptied where the standard requires presence), ``'replaced'``
        (pseudonym or dummy), ``'shifted'``, ``'cleaned'`` (free text kept on request, identifiers
        taken out), ``'uid-replaced'`` or ``'private-removed'``.
    flags : list of str
        What needs a human look before sharing (burned-in text, kept descriptors, ...).
    pseudonym : str or None
        The patient pseudonym written as PatientName and PatientID (None without a patient).
    burned_in : bool
        The image is flagged as possibly holding burned-in text (stated, or not stated for a
        modality that often has it).

    Notes
    -----
    The date offset is deliberately absent: with it the shifted dates give back the real ones.
    """

    actions: dict = field(default_factory=dict)
    flags: list = field(default_factory=list)
    pseudonym: str | None = None
    burned_in: bool = False

    def counts(self):
        """Number of attributes per action, a :class:`collections.Counter`."""
        return Counter(self.actions.values())

    def to_dict(self):
        """A JSON-ready copy."""
        return {"pseudonym": self.pseudonym, "actions": dict(self.actions), "flags": list(self.flags)}


class BurnedInRejected(DataError):
    """A data set flagged as holding burned-in text, refused because ``reject_burned_in`` is set."""


def flag_images(ds, log):
    """Flag what needs a human look at the pixels; sets ``log.burned_in``."""
    burned = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if burned == "YES":
        log.burned_in = True
        log.flags.append("BurnedInAnnotation=YES: pixel data may contain identifying text; review before sharing")
    elif not burned and modality in _BURN_IN_MODALITIES and "PixelData" in ds:
        log.burned_in = True
        log.flags.append(f"BurnedInAnnotation not stated for modality {modality}, which often burns in text; "
                         "review the pixels before sharing")
    if str(ds.get("RecognizableVisualFeatures", "") or "").strip().upper() == "YES":
        log.flags.append("RecognizableVisualFeatures=YES: the image may show a recognisable face")


def note_warnings(log, caught):
    """Count pydicom's warnings into ``log`` (their text may quote identifying values)."""
    if caught:
        # No count in the text: identical flags add up in the summary.
        log.flags.append("pydicom warned about malformed values (not shown: they may quote identifying text)")


def read_dicom(pydicom, path):
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
