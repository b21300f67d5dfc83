"""Reading the arrays of a model file's zip container without trusting a byte of it (private).

A tinycnn model file is a zip archive of ``.npy`` entries, stored uncompressed, written by
``numpy.savez``. ``numpy.load`` would read it, but lets the reader's own exceptions out for a
damaged file (``NotImplementedError`` for a flipped flag bit or compression method,
``RuntimeError`` for an "encrypted" entry, ``tokenize.TokenError`` for a mangled ``.npy``
header, ...) and answers a text file with advice to unpickle it. So this module checks what
the zip directory declares before reading anything, reads each entry whole (``zipfile``
verifies its CRC-32 at the end of the entry, so a flipped byte in it is caught before the
``.npy`` header is parsed), parses the header, and checks the declared shape against the
bytes present. Every failure is one :class:`ModelFileError` that says what was wrong.
"""

import io
import math
import struct
import tokenize
import zipfile

import numpy as np

from .errors import ModelFileError

ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
# zip general-purpose flag bits numpy never sets: 0 encrypted, 5 compressed patched data,
# 6 strong encryption, 13 encrypted central directory
_FORBIDDEN_FLAGS = {0x0001: "encrypted", 0x0020: "compressed patched data", 0x0040: "strong encryption",
                    0x2000: "encrypted directory"}

# What zipfile and numpy's .npy reader raise on damaged input (each documented or seen in their
# source): a bad archive, an unsupported feature, a short read, a bad struct field or header
# literal, an offset too large for the platform, a name that does not decode.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
                ValueError, struct.error, tokenize.TokenError, SyntaxError, OverflowError, MemoryError, KeyError)


def _what_it_is(head):
    """A few words on what a file that is not a zip archive looks like, from its first bytes."""
    if head.startswith(NPY_MAGIC):
        return "it looks like a single NumPy .npy array"
    if head.startswith((b"\x80", b"(dp", b"(lp")):
        return "it looks like a Python pickle"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*")):
        return "it looks like an image"
    if head.startswith((b"\x89HDF", b"\x1f\x8b")):
        return "it looks like an HDF5 or gzip file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not a zip archive"
    return "it looks like text"


def _damaged(path, why):
    return ModelFileError(f"{path!r} is damaged or not a tinycnn model file: {why}")


_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header: the 30 bytes before each entry's name
_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record: the file's last 22 bytes
_CENTRAL_FIXED = 46  # bytes of a central directory record before its name, extra field and comment


def _check_end_record(path, f, archive_size, infos):
    """The end record of an archive as numpy writes it: one disk, no comment, the directory
    right before it and exactly as long as its records.

    zipfile tolerates a wrong entry count, a comment and a directory at another offset (it
    assumes bytes were prepended); none of these occurs in a file tinycnn wrote.
    """
    f.seek(max(0, archive_size - _EOCD.size - 20))
    tail = f.read()
    if tail[-_EOCD.size - 20:-_EOCD.size][:4] == b"PK\x06\x07":
        return  # a zip64 end record (over 65535 entries or 4 GiB): zipfile has checked it
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment = _EOCD.unpack(tail[-_EOCD.size:])
    problems = [
        (sig != b"PK\x05\x06" or comment != 0, "the end record is not the last 22 bytes (a comment or trailing bytes)"),
        (disk != 0 or cd_disk != 0, f"the end record names disks {disk} and {cd_disk}; model files span one"),
        (n_disk != len(infos) or n_total != len(infos),
         f"the end record counts {n_disk} and {n_total} entries but the directory holds {len(infos)}"),
        (cd_offset + cd_size != archive_size - _EOCD.size,
         f"the end record places the directory at {cd_offset} with {cd_size} bytes, which does not fit the file"),
    ]
    for bad, why in problems:
        if bad:
            raise _damaged(path, why)
    # zipfile reads the directory as one block and stops at its end, so a record whose name,
    # extra field or comment runs past it is cut short silently: walk the records here.
    f.seek(cd_offset)
    directory, pos = f.read(cd_size), 0
    for info in infos:
        fixed = directory[pos:pos + _CENTRAL_FIXED]
        if len(fixed) < _CENTRAL_FIXED or fixed[:4] != b"PK\x01\x02":
            raise _damaged(path, f"the directory record of entry {info.filename!r} is cut off")
        pos += _CENTRAL_FIXED + sum(struct.unpack("<HHH", fixed[28:34]))
    if pos != cd_size:
        raise _damaged(path, f"the directory records take {pos} bytes, not the {cd_size} the end record declares")


def _check_entry(path, info, archive_size):
    """Refuse a directory record tinycnn never writes or one that cannot fit the file."""
    name = info.filename
    for bit, what in _FORBIDDEN_FLAGS.items():
        if info.flag_bits & bit:
            raise _damaged(path, f"entry {name!r} is marked '{what}' (tinycnn never writes that)")
    if info.compress_type != zipfile.ZIP_STORED:
        raise _damaged(path, f"entry {name!r} declares compression method {info.compress_type}; "
                             "tinycnn model files are stored uncompressed")
    if info.file_size != info.compress_size:
        raise _damaged(path, f"entry {name!r} declares {info.compress_size} stored bytes but "
                             f"{info.file_size} bytes of content")
    if info.header_offset < 0 or info.header_offset + info.compress_size > archive_size:
        raise _damaged(path, f"entry {name!r} extends past the end of the file (truncated?)")
    if info.volume != 0 or info.comment:
        raise _damaged(path, f"entry {name!r} names disk {info.volume} or carries a comment")
    if not name.endswith(".npy"):
        raise _damaged(path, f"entry {name!r} is not a .npy array")


def _dos_time(date_time):
    y, mo, d, h, mi, s = date_time
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


def _zip64_sizes(extra):
    """(uncompressed, compressed) sizes from a local header's extra field, or None if it is malformed.

    In a local header the zip64 field holds exactly these two sizes (16 bytes); every field
    must fit the extra field exactly.
    """
    sizes = None
    while extra:
        if len(extra) < 4:
            return None
        tag, n = struct.unpack("<HH", extra[:4])
        if len(extra) < 4 + n or (tag == 1 and n != 16):
            return None
        if tag == 1:
            sizes = struct.unpack("<QQ", extra[4:20])
        extra = extra[4 + n:]
    return sizes


def _check_local_header(path, f, info):
    """The local header must repeat the directory record: zipfile reads only its name and lengths."""
    f.seek(info.header_offset)
    head = f.read(_LOCAL.size)
    if len(head) < _LOCAL.size:
        raise _damaged(path, f"the local header of entry {info.filename!r} is cut off")
    sig, version, flags, method, time, date, crc, csize, usize, n_name, n_extra = _LOCAL.unpack(head)
    f.seek(n_name, 1)
    extra = f.read(n_extra)
    if (usize, csize) == (0xFFFFFFFF, 0xFFFFFFFF):
        usize, csize = _zip64_sizes(extra) or (None, None)
    if flags & 0x08:  # sizes and CRC in a data descriptor after the data; zipfile checks the CRC
        crc, csize, usize = info.CRC, info.compress_size, info.file_size
    same = (sig == ZIP_MAGIC, version == info.extract_version | (info.reserved << 8), flags == info.flag_bits,
            method == info.compress_type, (time, date) == _dos_time(info.date_time), crc == info.CRC,
            (usize, csize) == (info.file_size, info.compress_size), len(extra) == n_extra)
    fields = ("signature", "version needed", "flags", "compression method", "modification time", "CRC-32",
              "sizes", "extra field")
    for ok, field in zip(same, fields, strict=True):
        if not ok:
            raise _damaged(path, f"the local header of entry {info.filename!r} disagrees with the directory "
                                 f"({field})")


def _parse_npy(path, name, raw):
    """The array held in the bytes of one ``.npy`` entry; object arrays are refused."""
    f = io.BytesIO(raw)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise _damaged(path, f"entry {name!r} has .npy format version {version}")
    if dtype.hasobject:
        raise ModelFileError(f"{path!r} is not a tinycnn model file: entry {name!r} holds Python objects, and "
                             "reading them would run code stored in the file; refused")
    if any(d < 0 for d in shape):
        raise _damaged(path, f"entry {name!r} declares the shape {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    if f.tell() + nbytes != len(raw):
        raise _damaged(path, f"entry {name!r} declares {nbytes} bytes of array data but holds {len(raw) - f.tell()}")
    a = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=f.tell())
    return a.reshape(shape, order="F" if fortran else "C").copy()


def read_arrays(path):
    """Every array of the zip container at ``path``: ``{name without .npy: array}``.

    Raises
    ------
    ModelFileError
        The file is empty, not a zip archive (naming what it looks like), or a damaged one:
        a directory record tinycnn never writes, an entry that does not fit the file, a
        failed CRC, a bad ``.npy`` header, or an object array (never unpickled).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            archive_size = f.seek(0, 2)
    except OSError as e:
        raise ModelFileError(f"cannot read the model file {path!r}: {e.strerror or e}") from None
    if not head:
        raise ModelFileError(f"{path!r} is empty, not a tinycnn model file")
    if not head.startswith(ZIP_MAGIC):
        raise ModelFileError(f"{path!r} is not a tinycnn model file ({_what_it_is(head)}); model "
                             "files are written by `tinycnn train --out FILE` or `model.save(FILE)`")
    arrays, name = {}, None
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
            infos = zf.infolist()
            _check_end_record(path, f, archive_size, infos)
            for info in infos:
                _check_entry(path, info, archive_size)
                _check_local_header(path, f, info)
            for info in infos:
                name = info.filename[: -len(".npy")]
                if name in arrays:
                    raise _damaged(path, f"entry {info.filename!r} appears twice")
                arrays[name] = _parse_npy(path, name, zf.read(info))
    except ModelFileError:
        raise
    except _READ_ERRORS as e:
        where = f" (entry {name!r})" if name is not None else ""
        raise _damaged(path, f"{type(e).__name__}: {e}{where}") from None
    return arrays
