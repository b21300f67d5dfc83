"""Model files: every damaged zip field and every file that is not a model gives ModelFileError.

Deterministic companions of the Hypothesis tests in test_fuzz_engine.py: each field of the
zip container (local file header, central directory record, end record) of a real model
file is changed five ways, and each change must be refused. Three fields describe only the
system that wrote the file and are read by no zip reader (version made by, internal and
external attributes); changing them must leave the model bit-identical.
"""

import io
import struct
import zipfile

import numpy as np
import pytest

from tinycnn.errors import ModelFileError
from tinycnn.io import read_model_file
from tinycnn.layers import Conv2D, Dense, GlobalAveragePooling2D
from tinycnn.models import Sequential, load_model

LOCAL = [("signature", 0, 4), ("version needed", 4, 2), ("flags", 6, 2), ("compression method", 8, 2),
         ("modification time", 10, 2), ("modification date", 12, 2), ("CRC-32", 14, 4),
         ("compressed size", 18, 4), ("uncompressed size", 22, 4), ("name length", 26, 2),
         ("extra length", 28, 2)]
CENTRAL = [("signature", 0, 4), ("version made by", 4, 2), ("version needed", 6, 2), ("flags", 8, 2),
           ("compression method", 10, 2), ("modification time", 12, 2), ("modification date", 14, 2),
           ("CRC-32", 16, 4), ("compressed size", 20, 4), ("uncompressed size", 24, 4), ("name length", 28, 2),
           ("extra length", 30, 2), ("comment length", 32, 2), ("disk number start", 34, 2),
           ("internal attributes", 36, 2), ("external attributes", 38, 4), ("local header offset", 42, 4)]
END = [("signature", 0, 4), ("disk number", 4, 2), ("disk with the directory", 6, 2),
       ("entries on this disk", 8, 2), ("entries in all", 10, 2), ("directory size", 12, 4),
       ("directory offset", 16, 4), ("comment length", 20, 2)]
UNREAD = {"version made by", "internal attributes", "external attributes"}


def _changes(value, nbytes):
    """Five new values of a field, each different from ``value``."""
    mask = (1 << (8 * nbytes)) - 1
    return {"all bits flipped": value ^ mask, "low bit flipped": value ^ 1,
            "high bit flipped": value ^ (1 << (8 * nbytes - 1)),
            "lowest": 0 if value else 1, "highest": mask if value != mask else mask - 1}


FIELDS = ([("local header", e, *f) for e in ("first", "last") for f in LOCAL]
          + [("directory record", e, *f) for e in ("first", "last") for f in CENTRAL]
          + [("end record", "-", *f) for f in END])
CHANGES = list(_changes(0, 1))


def _model():
    m = Sequential([Conv2D(2, 3, input_shape=(6, 6, 1)), GlobalAveragePooling2D(), Dense(1)])
    m.build()
    return m


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "m.tcnn"
    model = _model()
    model.save(path)
    return path.read_bytes(), model


def _start(raw, where, entry):
    """Offset of the structure ``where`` of the first or last entry."""
    eocd = len(raw) - 22
    if where == "end record":
        return eocd
    n, cd_offset = struct.unpack("<H", raw[eocd + 10:eocd + 12])[0], struct.unpack("<I", raw[eocd + 16:eocd + 20])[0]
    records, pos = [], cd_offset
    for _ in range(n):
        records.append(pos)
        name_len, extra_len, comment_len = struct.unpack("<HHH", raw[pos + 28:pos + 34])
        pos += 46 + name_len + extra_len + comment_len
    record = records[0 if entry == "first" else -1]
    if where == "directory record":
        return record
    return struct.unpack("<I", raw[record + 42:record + 46])[0]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize(("where", "entry", "field", "offset", "size"), FIELDS,
                         ids=[f"{w}-{e}-{f}" for w, e, f, _, _ in FIELDS])
def test_every_changed_zip_field_is_refused(good, tmp_path, where, entry, field, offset, size, change):
    raw, model = good
    at = _start(raw, where, entry) + offset
    old = int.from_bytes(raw[at:at + size], "little")
    new = _changes(old, size)[change]
    path = tmp_path / "changed.tcnn"
    path.write_bytes(raw[:at] + new.to_bytes(size, "little") + raw[at + size:])
    if field in UNREAD:
        back = load_model(path)
        for a, b in zip(back.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        return
    with pytest.raises(ModelFileError, match="damaged|not a tinycnn model file|failed its checksum"):
        load_model(path)


def _unread_bytes(raw):
    """Positions of the directory fields no reader uses (every record's, not just the first and last)."""
    eocd = len(raw) - 22
    n, pos = struct.unpack("<H", raw[eocd + 10:eocd + 12])[0], struct.unpack("<I", raw[eocd + 16:eocd + 20])[0]
    out = set()
    for _ in range(n):
        out |= {pos + o for name, start, size in CENTRAL if name in UNREAD for o in range(start, start + size)}
        pos += 46 + sum(struct.unpack("<HHH", raw[pos + 28:pos + 34]))
    return out


def test_every_truncation_and_every_flipped_byte_is_refused(good, tmp_path):
    raw, _ = good
    unread = _unread_bytes(raw)
    assert len(unread) == 6 * 8
    path = tmp_path / "cut.tcnn"
    for cut in range(len(raw)):
        path.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError):
            read_model_file(path)
    for pos in sorted(set(range(len(raw))) - unread):
        path.write_bytes(raw[:pos] + bytes([raw[pos] ^ 0xFF]) + raw[pos + 1:])
        with pytest.raises(ModelFileError):
            read_model_file(path)


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_a_mangled_npy_header_with_a_valid_crc_is_refused(good, tmp_path):
    # numpy's header parser lets tokenize.TokenError out for an unclosed bracket; found by
    # running the Hypothesis tests with random seeds on entries too large for one read.
    raw, _ = good
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    header = entries["layer0/kernel.npy"]
    entries["layer0/kernel.npy"] = header.replace(b"'shape': (3, 3, 1, 2)", b"'shape': (3, 3, 1, 2 ")
    assert entries["layer0/kernel.npy"] != header
    with pytest.raises(ModelFileError, match="damaged or not a tinycnn model file: TokenError"):
        read_model_file(_zip(tmp_path / "m.tcnn", entries))


NOT_MODELS = {
    "text": lambda p: p.write_text("weights = [0.1, 0.2]\n"),
    "empty": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(7).bytes(3000)),
    "a pickle": lambda p: p.write_bytes(b"\x80\x04\x95" + bytes(40)),
    "an image": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40)),
    "a .npy array": lambda p: p.write_bytes(_npy(np.arange(4.0))),
    "an .npz of other arrays": lambda p: np.savez(open(p, "wb"), train_images=np.zeros((2, 3, 3), np.uint8)),
    "a zip holding a pickle": lambda p: _zip(p, {"data.pkl": b"\x80\x04\x95" + bytes(40)}),
    "an .npz holding an object array": lambda p: np.savez(open(p, "wb"), __meta__=np.array([{}], dtype=object),
                                                          __checksum__=np.zeros(64, np.uint8)),
}


@pytest.mark.parametrize("kind", list(NOT_MODELS))
def test_files_that_are_not_model_files_say_so_and_never_suggest_unpickling(tmp_path, kind):
    path = tmp_path / "model.tcnn"
    NOT_MODELS[kind](path)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    msg = str(info.value)
    assert "not a tinycnn model file" in msg and str(path) in msg
    assert "allow_pickle" not in msg and "unpickl" not in msg.replace("never unpickled", "")


def test_the_message_names_what_the_file_looks_like(tmp_path):
    path = tmp_path / "notes.tcnn"
    NOT_MODELS["text"](path)
    with pytest.raises(ModelFileError, match=r"it looks like text\).*tinycnn train --out"):
        read_model_file(path)
    NOT_MODELS["empty"](path)
    with pytest.raises(ModelFileError, match="is empty"):
        read_model_file(path)
