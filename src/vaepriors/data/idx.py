"""IDX reader (the MNIST file format) that checks everything it relies on.

Layout: 2 zero bytes, 1 dtype code, 1 byte ndim, ndim big-endian uint32 sizes, then the data in
C order. Only unsigned bytes (code 0x08) occur in MNIST-like sets, so only those are accepted; a
file with another type is reported rather than silently misread.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
# Type codes of the IDX specification, named so an unsupported one gets a useful message.
KNOWN_CODES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}


class IDXFormatError(ValueError):
    """A file is not a valid IDX file; the message names the file and the problem."""


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by magic bytes, not the name)."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; a cut stream raises EOFError; a bad CRC or deflate block,
        # zlib.error or BadGzipFile.
        raise IDXFormatError(f"{path}: corrupt gzip stream ({exc})") from None


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a read-only uint8 array of the shape the header gives."""
    if len(data) < 4:
        raise IDXFormatError(f"{where}: truncated: {len(data)} bytes, too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise IDXFormatError(f"{where}: bad magic number 0x{data[:4].hex()}: an IDX file starts "
                             "with two zero bytes")
    if code != UBYTE:
        kind = KNOWN_CODES.get(code)
        what = f"unsupported dtype code 0x{code:02X} ({kind})" if kind else \
            f"invalid dtype code 0x{code:02X}"
        raise IDXFormatError(f"{where}: {what}; only 0x08 (unsigned byte) is supported")
    if ndim == 0:
        raise IDXFormatError(f"{where}: bad magic number 0x{data[:4].hex()}: zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{where}: truncated header: expected {header} bytes for {ndim} "
                             f"dimensions, got {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise IDXFormatError(f"{where}: truncated: expected {expected} bytes for shape "
                             f"{tuple(dims)}, got {len(data)}")
    if len(data) > expected:
        raise IDXFormatError(f"{where}: {len(data) - expected} trailing bytes: expected "
                             f"{expected} bytes for shape {tuple(dims)}, got {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read a gzip or plain IDX file; ``ndim``, if given, is checked too."""
    array = parse_idx(read_bytes(path), where=str(path))
    if ndim is not None and array.ndim != ndim:
        raise IDXFormatError(f"{path}: expected {ndim} dimensions, got shape {array.shape}")
    return array
