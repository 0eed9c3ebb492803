"""The IDX reader accepts valid files and names the file and the problem for malformed ones."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from vaepriors.data.idx import IDXFormatError, read_idx

IMAGES = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


def idx(array=IMAGES, code=0x08, zero=0, ndim=None) -> bytes:
    ndim = array.ndim if ndim is None else ndim
    return struct.pack(">HBB", zero, code, ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.tobytes()


def write(tmp_path, name, data: bytes, compress=True):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


@pytest.mark.parametrize("compress", [True, False])
def test_valid_file_round_trips(tmp_path, compress):
    path = write(tmp_path, "ok.gz" if compress else "ok", idx(), compress)
    array = read_idx(path, ndim=3)
    assert array.dtype == np.uint8 and array.shape == (3, 4, 5)
    np.testing.assert_array_equal(array, IMAGES)


@pytest.mark.parametrize("name, data, compress, expected", [
    ("bad-magic.gz", idx(zero=0x0100), True, "bad magic number"),
    ("zero-dims.gz", idx(ndim=0), True, "zero dimensions"),
    ("float.gz", idx(code=0x0D), True, "unsupported dtype code 0x0D"),
    ("weird.gz", idx(code=0x07), True, "invalid dtype code 0x07"),
    ("short.gz", idx()[:-7], True, "truncated: expected 76 bytes for shape (3, 4, 5), got 69"),
    ("short-header.gz", idx()[:9], True, "truncated header"),
    ("tiny", b"\0\0", False, "too short for an IDX header"),
    ("extra.gz", idx() + b"\0\0\0", True, "3 trailing bytes"),
    ("corrupt.gz", gzip.compress(idx(), mtime=0)[:-8] + b"\xff" * 8, False, "corrupt gzip"),
    ("cut.gz", gzip.compress(idx(), mtime=0)[:20], False, "corrupt gzip"),
])
def test_malformed_files_name_file_and_problem(tmp_path, name, data, compress, expected):
    path = write(tmp_path, name, data, compress)
    with pytest.raises(IDXFormatError) as err:
        read_idx(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_wrong_number_of_dimensions(tmp_path):
    path = write(tmp_path, "labels.gz", idx(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(IDXFormatError, match="expected 3 dimensions"):
        read_idx(path, ndim=3)
