"""Writing result files so that a killed job never leaves a half-written one at the final path,
and saying what a damaged one is."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", fsync: bool = False, prefix: str = "",
                mode: int = 0o644) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write to; renamed onto ``path`` when the block ends
    without an error, removed otherwise (an interrupt included). Same folder, so the rename is
    atomic. ``fsync``: flush the file to disk before the rename (checkpoints that must survive a
    kill -9 or a power cut); ``mode``: permissions of the final file (mkstemp creates 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_torch(obj: Any, path: str | Path, fsync: bool = False) -> Path:
    """torch.save through a temporary file, then rename. Saved through a file object, so the
    archive inside is named "archive", not after the random temporary: the same object gives the
    same bytes (a retrained identical model changes no hash downstream)."""
    import torch

    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) through a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON through a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2)
    return Path(path)


def zip_damage(path: str | Path) -> str | None:
    """What a file that should be a zip archive (.npz, torch's format) is when it is not a whole
    one: empty, truncated, a pickle (PICKLE) or something else; None for a zip archive (its
    checksums unread)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return None if zipfile.is_zipfile(path) else "a truncated zip archive: its end is missing"
    if head[0] == 0x80:  # a pickle's protocol opcode
        return PICKLE
    return f"neither a zip archive nor a pickle (it begins {head!r})"


PICKLE = "a pickle, not a zip archive"


def write_npz(path: str | Path, arrays: dict, compress: bool = False, fsync: bool = False) -> Path:
    """``np.savez(_compressed)`` atomically and byte-reproducibly: the same arrays give the same
    bytes (np.savez stamps each member with the time), so a rebuilt file that did not change
    is seen as unchanged by content checks (Snakemake's checksums, DVC's hashes)."""
    import numpy as np

    path = Path(path)
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path, suffix=".npz", prefix=f".{path.name}.partial-", fsync=fsync) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as archive:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                info.external_attr = 0o644 << 16
                with archive.open(info, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return path
