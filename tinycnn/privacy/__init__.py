"""De-identify DICOM files before they leave the hospital: PS3.15 Table E.1-1, keyed pseudonyms and UIDs.

Every attribute of DICOM PS3.15 Table E.1-1 (the *Basic Application Level Confidentiality
Profile*) gets its action, at any depth of nesting, with the options tinycnn declares in
DeidentificationMethodCodeSequence (0012,0064):

- *Retain Longitudinal Temporal Information with Modified Dates* (``date_policy='shift'``): every
  date and time of one patient moves by the same offset, so intervals survive;
- *Retain Patient Characteristics* (``age_policy`` / ``sex_policy``, either ``'keep'``);
- *Clean Descriptors* (``keep_descriptors=True``): descriptions kept, cleaned and flagged.

Everything that depends on a secret ``key`` is an HMAC-SHA256 of it: the patient pseudonym
(``ANON-<12 hex>``), the date offset and each new UID (``2.25.<128-bit integer>``). With the same key
the same patient, study or instance gets the same replacement in every file and in every run, so
a folder can be processed in pieces. Without a key a random one is drawn per :class:`Deidentifier`
(and per :func:`deidentify_tree` call); consistency then holds within that run only, and nobody,
this module included, can link the output back to the originals.

The pixel data is copied untouched: text burned into the image is *flagged* (or, with
``reject_burned_in``, the file is not written), never removed.

The package, by job: :mod:`.profile` (the table and the options), :mod:`.walker` (one data set),
:mod:`.temporal` and :mod:`.values` (what a date, a dummy or a cleaned text becomes),
:mod:`.record` (the log of one data set, its flags), :mod:`.tree` (files and folders, the
folder's log) and :mod:`.cli` (``tinycnn deidentify``).

Example
-------
>>> from tinycnn.privacy import deidentify_tree                      # doctest: +SKIP
>>> deidentify_tree("raw_scans", "shareable", key=open("site.key", "rb").read())  # doctest: +SKIP
"""

from .cli import add_cli
from .profile import EDITION
from .record import BurnedInRejected, DeidLog
from .tree import LOG_NAME, PROFILE, TreeSummary, deidentify_tree
from .walker import DATE_POLICIES, KEEP_POLICIES, Deidentifier, deidentify

__all__ = ["BurnedInRejected", "DATE_POLICIES", "DeidLog", "Deidentifier", "EDITION", "KEEP_POLICIES",
           "LOG_NAME", "PROFILE", "TreeSummary", "add_cli", "deidentify", "deidentify_tree"]
