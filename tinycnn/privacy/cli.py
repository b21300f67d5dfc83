"""The ``tinycnn deidentify`` command."""

import sys
from pathlib import Path

from ..errors import ConfigError, DataError
from .tree import LOG_NAME, deidentify_tree
from .walker import DATE_POLICIES


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
                    f"{LOG_NAME}, following DICOM PS3.15 Table E.1-1 (Basic Application Level "
                    "Confidentiality Profile). Input files are never modified.")
    p.add_argument("in_path", metavar="IN", help="a DICOM file or a folder of them")
    p.add_argument("out_path", metavar="OUT", help="output folder, outside IN")
    p.add_argument("--key-file", metavar="F",
                   help="file holding the secret key (default: a random key, which links nothing across runs)")
    p.add_argument("--date-policy", choices=DATE_POLICIES, default="shift",
                   help="shift dates and times per patient (default; Retain Longitudinal Temporal "
                        "Information with Modified Dates) or remove them")
    p.add_argument("--remove-age", action="store_true", help="drop PatientAge (default: keep it)")
    p.add_argument("--remove-sex", action="store_true", help="empty PatientSex (default: keep it)")
    p.add_argument("--keep-descriptors", action="store_true",
                   help="keep free-text descriptions, cleaned of the file's identifiers (Clean "
                        "Descriptors option; flagged for review) (default: remove them)")
    p.add_argument("--reject-burned-in", action="store_true",
                   help="write no file that may hold burned-in text in its pixels, and list them "
                        "(for sites that cannot review the images) (default: write and flag them)")
    p.add_argument("--hash-folder-names", action="store_true",
                   help="replace sub-folder names by keyed hashes (default: copy them as they are)")
    p.set_defaults(func=_run_cli)
    return p


def _read_key(key_file):
    try:
        key = Path(key_file).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"--key-file {key_file}: cannot be read ({exc.strerror})") from None
    if not key:
        raise ConfigError(f"--key-file {key_file}: the file is empty")
    return key


def _run_cli(args):
    """Run ``tinycnn deidentify``: 0 on success, 2 on a usage error, 1 when the data cannot be read."""
    try:
        key = _read_key(args.key_file) if args.key_file else None
        summary = deidentify_tree(
            args.in_path, args.out_path, key, hash_folder_names=args.hash_folder_names,
            date_policy=args.date_policy, age_policy="remove" if args.remove_age else "keep",
            sex_policy="remove" if args.remove_sex else "keep", keep_descriptors=args.keep_descriptors,
            reject_burned_in=args.reject_burned_in)
    except ConfigError as exc:  # what the user typed: OUT inside IN, an unreadable --key-file
        print(f"tinycnn deidentify: error: {exc}", file=sys.stderr)
        return 2
    except (DataError, ImportError, OSError) as exc:
        print(f"tinycnn deidentify: error: {exc}", file=sys.stderr)
        return 1
    _report(args, summary)
    return 0


def _report(args, summary):
    print(f"written: {summary.written} file(s) into {args.out_path}")
    print(f"skipped: {summary.skipped} file(s)")
    for reason, n in sorted(summary.skip_reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {reason}")
    if summary.rejected:
        # Printed here, never written to the log: input names may hold identifiers.
        print(f"rejected for possible burned-in text: {len(summary.rejected)} file(s) under {args.in_path}")
        for rel in summary.rejected:
            print(f"  {rel.as_posix()}")
    print(f"flagged: {summary.flagged} file(s) to review before sharing")
    for flag, n in sorted(summary.flag_counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {flag}")
    print(f"log: {summary.log_path}")
    if not args.hash_folder_names:
        print("sub-folder names: copied as they are; check them or use --hash-folder-names")
    if summary.random_key:
        print("key: random; UIDs and pseudonyms match no other run (use --key-file to link runs)")
