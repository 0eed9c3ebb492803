"""Continuous offline sets (the circle toy, data/circle.py): raw snapshot and prepared arrays.

They split like the other offline sets (prepare.split_three: n_validation points each for
validation and test); their points are float32 observed as they are (``continuous`` = 1), so
xb_val and xb_test hold the points themselves. Extra per-point arrays come along: ``angle_*``,
the true angle, and ``log_density_val`` / ``log_density_test``, the true log-density.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import circle

# name -> generator module (a spec CIRCLE, sample(), content_sha256(x, y, angle), log_density(x))
CONTINUOUS = {"circle": circle}
EXPECTED_SHA256 = {"circle": circle.CIRCLE_SHA256}
RAW_KEYS = ("x", "y", "angle")


def is_continuous(arrays) -> bool:
    """Whether prepared arrays hold continuous points observed as they are (not grey levels)."""
    return bool(arrays.get("continuous", 0)) if hasattr(arrays, "get") else False


def as_points(arrays, key: str, dtype=np.float32) -> np.ndarray:
    """A split in the data space the models see: grey levels x / 255 of images, continuous points
    as they are."""
    x = np.asarray(arrays[key], dtype)
    return x if is_continuous(arrays) else x / 255


def _verified(name: str, arrays: dict, where: str) -> dict:
    from .prepare import PrepareError

    got = CONTINUOUS[name].content_sha256(*(arrays[k] for k in RAW_KEYS))
    if got != EXPECTED_SHA256[name]:
        raise PrepareError(f"{where}: {name} content sha256 {got} != expected {EXPECTED_SHA256[name]}")
    return {k: arrays[k] for k in RAW_KEYS}


def snapshot(name: str, raw_dir: str | Path) -> Path:
    """The raw stage: the verified draws in raw_dir/name/name.npz."""
    from ..io import write_npz

    return write_npz(Path(raw_dir) / name / f"{name}.npz",
                     _verified(name, CONTINUOUS[name].sample(), "generator"))


def load_raw(name: str, raw_dir: str | Path) -> dict:
    """{x, y, angle}: the raw snapshot if present, else generated afresh (verified either way)."""
    path = Path(raw_dir) / name / f"{name}.npz"
    if not path.exists():
        return _verified(name, CONTINUOUS[name].sample(), name)
    with np.load(path) as raw:
        return _verified(name, {k: raw[k] for k in RAW_KEYS}, str(path))


def build(name: str, raw_dir: str | Path, split_seed: int, binarize_seed: int, n_validation: int,
          max_train: int | None = 0) -> dict[str, np.ndarray]:
    """All arrays of the prepared set (module docstring), without writing anything."""
    from .prepare import split_three

    gen = CONTINUOUS[name]
    raw = load_raw(name, raw_dir)
    index = split_three(len(raw["x"]), n_validation, split_seed, max_train)
    out: dict[str, np.ndarray] = {}
    for part, rows in zip(("train", "val", "test"), index):
        out[f"x_{part}"] = np.ascontiguousarray(raw["x"][rows], dtype=np.float32)
        out[f"y_{part}"] = raw["y"][rows].astype(np.int64)
        out[f"angle_{part}"] = raw["angle"][rows].astype(np.float64)
        if part != "train":
            out[f"xb_{part}"] = out[f"x_{part}"]
            out[f"log_density_{part}"] = gen.log_density(out[f"x_{part}"])
    spec = gen.CIRCLE
    scalar = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    out.update(image_shape=scalar((1, spec.dim)), n_classes=scalar(len(spec.weights)),
               split_seed=scalar(split_seed), binarize_seed=scalar(binarize_seed),
               continuous=scalar(1), version=scalar(spec.version))
    return out
