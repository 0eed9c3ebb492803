"""Prepared data: fixed seeded split, fixed binarisation of validation and test, one .npz file.

Keys of ``data/processed/{dataset}.npz`` (docs/design.md):
  x_train, x_val, x_test   uint8 (N, D) flattened images, 0..255
  y_train, y_val, y_test   int64 (N,)
  xb_val, xb_test          uint8 (N, D) in {0, 1}: one Bernoulli(x/255) draw fixed by
                           binarize_seed, so every model is evaluated on the same binary images
                           (training re-binarises each epoch, as Davidson et al. 2018 and
                           Burda et al. 2015 do)
  image_shape              int64 (2,) = (height, width)
  n_classes                int64 scalar

MNIST-like sets: the official 60k training set is split by a seeded permutation into train and
``n_validation`` validation images; the official 10k test set is the test set. ``digits`` and
``synthetic`` have no official split: a seeded permutation gives test and validation sets of
``n_validation`` images each and the rest for training. Continuous sets (the circle toy) hold
float32 points instead of images: data/continuous.py.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from pathlib import Path

import numpy as np

from ..io import write_npz, zip_damage
from . import continuous
from .download import dataset_dir, verify_file
from .idx import IDXFormatError, read_idx
from .registry import (
    DATASETS,
    GENERATED,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    get_dataset,
)

log = logging.getLogger(__name__)

SYNTHETIC_SEED = 2018  # the synthetic images themselves never change; only their split is seeded
SYNTHETIC_CLASSES = 10
SYNTHETIC_PER_CLASS = 300
SYNTHETIC_SHAPE = (8, 8)

KEYS = ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test", "xb_val", "xb_test",
        "image_shape", "n_classes", "split_seed", "binarize_seed")


class PrepareError(ValueError):
    """The raw data or a setting cannot produce a prepared dataset; the message says which."""


class ProcessedDataError(ValueError):
    """A processed .npz file is missing, unreadable or malformed; the message names file and key."""


# --- splitting and binarisation ------------------------------------------------------------------

def _cap(train: np.ndarray, max_train: int | None) -> np.ndarray:
    # The cap takes the first indices of a random permutation, so it is a random subset.
    return train[:max_train] if max_train else train


def split_official(n: int, n_validation: int, seed: int, max_train: int | None = 0):
    """(train, val) indices of an official training set of ``n`` images."""
    if not 1 <= n_validation < n:
        raise PrepareError(f"n_validation={n_validation} must be between 1 and {n - 1} for a "
                           f"training set of {n} images")
    perm = np.random.default_rng(seed).permutation(n)
    # Sorted so the stored order does not depend on the permutation beyond set membership.
    return np.sort(_cap(perm[n_validation:], max_train)), np.sort(perm[:n_validation])


def split_three(n: int, n_validation: int, seed: int, max_train: int | None = 0):
    """(train, val, test) indices for a set without an official split: test and validation get
    ``n_validation`` images each."""
    if not 1 <= n_validation or 2 * n_validation >= n:
        raise PrepareError(f"n_validation={n_validation} is too large for {n} images: validation "
                           f"and test take n_validation each and must leave training images "
                           f"(need 2 * n_validation < {n})")
    perm = np.random.default_rng(seed).permutation(n)
    test, val = perm[:n_validation], perm[n_validation:2 * n_validation]
    return np.sort(_cap(perm[2 * n_validation:], max_train)), np.sort(val), np.sort(test)


def binarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Bernoulli(x / 255) draw per pixel, as uint8 {0, 1}."""
    return (rng.random(x.shape) < x / 255.0).astype(np.uint8)


def _assemble(x_pool, y_pool, x_test, y_test, train, val, split_seed, binarize_seed, image_shape,
              n_classes):
    x_val = x_pool[val]
    rng = np.random.default_rng(binarize_seed)
    xb_val = binarize(x_val, rng)
    xb_test = binarize(x_test, rng)  # same generator, continued: one seed fixes both
    return {
        "x_train": np.ascontiguousarray(x_pool[train], dtype=np.uint8),
        "x_val": np.ascontiguousarray(x_val, dtype=np.uint8),
        "x_test": np.ascontiguousarray(x_test, dtype=np.uint8),
        "y_train": y_pool[train].astype(np.int64),
        "y_val": y_pool[val].astype(np.int64),
        "y_test": np.asarray(y_test, dtype=np.int64),
        "xb_val": xb_val,
        "xb_test": xb_test,
        "image_shape": np.asarray(image_shape, dtype=np.int64),
        "n_classes": np.asarray(n_classes, dtype=np.int64),
        # Recorded so every metrics file can name the split and binarisation it was measured on.
        "split_seed": np.asarray(split_seed, dtype=np.int64),
        "binarize_seed": np.asarray(binarize_seed, dtype=np.int64),
    }


# --- sources of images ---------------------------------------------------------------------------

def load_idx_dataset(name: str, raw_dir: str | Path):
    """Verified official (x_train, y_train, x_test, y_test) of an IDX dataset, images flattened."""
    spec = get_dataset(name)
    folder = dataset_dir(raw_dir, name)
    for fspec in spec.files:
        path = folder / fspec.name
        if not path.is_file():
            raise PrepareError(f"{path}: missing; run scripts/download.py --dataset {name} first")
        ok, why = verify_file(path, fspec)
        if not ok:
            raise PrepareError(f"{path}: fails verification ({why}); delete it and run "
                               f"scripts/download.py --dataset {name} again")
    arrays = {}
    for key, fname, ndim in (("x_train", TRAIN_IMAGES, 3), ("y_train", TRAIN_LABELS, 1),
                             ("x_test", TEST_IMAGES, 3), ("y_test", TEST_LABELS, 1)):
        arrays[key] = read_idx(folder / fname, ndim=ndim)
    for part, images_file, labels_file in (("train", TRAIN_IMAGES, TRAIN_LABELS),
                                           ("test", TEST_IMAGES, TEST_LABELS)):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if len(x) != len(y):
            raise IDXFormatError(f"{folder / images_file} has {len(x)} images but "
                                 f"{folder / labels_file} has {len(y)} labels")
        if tuple(x.shape[1:]) != spec.image_shape:
            raise IDXFormatError(f"{folder / images_file}: images are {x.shape[1:]}, expected "
                                 f"{spec.image_shape}")
        if y.size and y.max() >= spec.n_classes:
            raise IDXFormatError(f"{folder / labels_file}: label {y.max()} outside "
                                 f"0..{spec.n_classes - 1}")
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    return (x_train.reshape(len(x_train), -1), arrays["y_train"],
            x_test.reshape(len(x_test), -1), arrays["y_test"])


def digits_arrays():
    """scikit-learn's 8x8 digits (1797 images, values 0..16) scaled to uint8 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.data * (255.0 / 16.0)).astype(np.uint8)
    return x, bunch.target.astype(np.int64)


def synthetic_arrays(seed: int = SYNTHETIC_SEED):
    """A small set with known clusters: 10 random binary 8x8 prototypes; each image is its class's
    prototype with 5% of pixels flipped and intensity noise. 3000 images, 300 per class."""
    rng = np.random.default_rng(seed)
    d = SYNTHETIC_SHAPE[0] * SYNTHETIC_SHAPE[1]
    protos = rng.random((SYNTHETIC_CLASSES, d)) < 0.4
    labels = np.repeat(np.arange(SYNTHETIC_CLASSES), SYNTHETIC_PER_CLASS)
    on = protos[labels] ^ (rng.random((len(labels), d)) < 0.05)
    noise = np.abs(rng.normal(0.0, 30.0, size=on.shape))
    x = np.where(on, 255.0 - noise, noise)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), labels.astype(np.int64)


# Content digests of the offline sets (sha256 of the image bytes then the label bytes), so a
# changed scikit-learn copy of digits, or a changed generator, cannot slip into results unnoticed.
GENERATED_SHA256 = {
    "digits": "0b7e9c3202d7bcd255d6a19a238d3743bf5e320ba74812a6679958a017c55382",
    "synthetic": "f48c184c262dee4be73bea5be99abbab516774f88c6307ecf7d701d58adbf12a",
}


def _content_sha256(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()


def _verified_generated(name: str, x: np.ndarray, y: np.ndarray, where: str):
    got = _content_sha256(x, y)
    if got != GENERATED_SHA256[name]:
        raise PrepareError(f"{where}: {name} content sha256 {got} != expected "
                           f"{GENERATED_SHA256[name]}")
    return x, y


def snapshot_generated(name: str, raw_dir: str | Path) -> Path:
    """The raw stage of an offline set: write its verified images and labels to
    raw_dir/name/name.npz, so every dataset enters `prepare` through the raw directory."""
    if name in continuous.CONTINUOUS:
        return continuous.snapshot(name, raw_dir)
    x, y = digits_arrays() if name == "digits" else synthetic_arrays()
    _verified_generated(name, x, y, "scikit-learn" if name == "digits" else "generator")
    path = Path(raw_dir) / name / f"{name}.npz"
    return write_npz(path, {"x": x, "y": y})


def load_generated(name: str, raw_dir: str | Path):
    """Images and labels of an offline set: its raw snapshot if present, else built afresh."""
    path = Path(raw_dir) / name / f"{name}.npz"
    if not path.exists():
        x, y = digits_arrays() if name == "digits" else synthetic_arrays()
        return _verified_generated(name, x, y, name)
    with np.load(path) as raw:
        return _verified_generated(name, raw["x"], raw["y"], str(path))


# --- building and saving -------------------------------------------------------------------------

def build_arrays(name: str, raw_dir: str | Path, split_seed: int, binarize_seed: int,
                 n_validation: int, max_train: int | None = 0) -> dict[str, np.ndarray]:
    """All arrays of a prepared dataset (see module docstring), without writing anything."""
    if max_train is not None and max_train < 0:
        raise PrepareError(f"max_train={max_train} must be >= 0 (0 = all training images)")
    if name in DATASETS:
        spec = DATASETS[name]
        x_pool, y_pool, x_test, y_test = load_idx_dataset(name, raw_dir)
        train, val = split_official(len(x_pool), n_validation, split_seed, max_train)
        return _assemble(x_pool, y_pool, x_test, y_test, train, val, split_seed, binarize_seed,
                         spec.image_shape, spec.n_classes)
    if name in continuous.CONTINUOUS:
        return continuous.build(name, raw_dir, split_seed, binarize_seed, n_validation, max_train)
    if name in GENERATED:
        x, y = load_generated(name, raw_dir)
        train, val, test = split_three(len(x), n_validation, split_seed, max_train)
        shape = (8, 8) if name == "digits" else SYNTHETIC_SHAPE
        return _assemble(x, y, x[test], y[test], train, val, split_seed, binarize_seed, shape, 10)
    get_dataset(name)  # raises the "unknown dataset" error with the list of known names
    raise AssertionError("unreachable")


def save_processed(arrays: dict[str, np.ndarray], out_path: str | Path) -> Path:
    """Write the .npz atomically: a temporary file in the same folder, then os.replace."""
    return write_npz(out_path, arrays, compress=True, fsync=True)


def prepare_dataset(name: str, raw_dir: str | Path, out_path: str | Path, split_seed: int = 0,
                    binarize_seed: int = 1, n_validation: int = 10000,
                    max_train: int | None = 0) -> dict[str, np.ndarray]:
    """Build dataset ``name`` (raw IDX files read from ``raw_dir/name/``) and write ``out_path``."""
    arrays = build_arrays(name, raw_dir, split_seed, binarize_seed, n_validation, max_train)
    save_processed(arrays, out_path)
    log.info("%s: train %d, validation %d, test %d images of %s -> %s", name,
             len(arrays["x_train"]), len(arrays["x_val"]), len(arrays["x_test"]),
             tuple(int(v) for v in arrays["image_shape"]), out_path)
    return arrays


# --- loading -------------------------------------------------------------------------------------

def load_processed(path: str | Path) -> dict[str, np.ndarray]:
    """Load a prepared .npz and check keys, dtypes and shapes; errors name the file and key."""
    path = Path(path)
    # Snakemake never rebuilds a damaged file by itself: it is newer than its inputs.
    rebuild = (f"Rebuild it with `snakemake --cores 1 --force {path}` (plus the --configfile you "
               "run with); the jobs that read it then rerun too")
    if not path.is_file():
        raise ProcessedDataError(f"{path}: not found. {rebuild}")
    damage = zip_damage(path)
    if damage:
        raise ProcessedDataError(f"{path}: not a readable .npz file ({damage}). {rebuild}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        # NumPy's message for a non-archive advises allow_pickle=True: unsafe, so not passed on.
        why = "not an .npz archive" if "allow_pickle" in str(exc) else str(exc)
        if "CRC" in why:
            why = f"a zip archive with a bad checksum: {why}"
        raise ProcessedDataError(f"{path}: not a readable .npz file ({why}). {rebuild}") from None
    missing = [key for key in KEYS if key not in data]
    if missing:
        raise ProcessedDataError(f"{path}: missing keys {missing}. {rebuild}")

    def fail(key: str, what: str):
        raise ProcessedDataError(f"{path}: key {key!r}: {what}. {rebuild}")

    shape, n_classes = data["image_shape"], data["n_classes"]
    if shape.shape != (2,) or shape.dtype != np.int64 or (shape <= 0).any():
        fail("image_shape", f"expected 2 positive int64, got {shape!r}")
    if n_classes.shape != () or n_classes.dtype != np.int64 or n_classes < 1:
        fail("n_classes", f"expected a positive int64 scalar, got {n_classes!r}")
    dim = int(np.prod(shape))
    points = continuous.is_continuous(data)  # float32 points instead of uint8 images
    kind = np.dtype(np.float32 if points else np.uint8)
    for part in ("train", "val", "test"):
        x, y = data[f"x_{part}"], data[f"y_{part}"]
        if x.dtype != kind or x.ndim != 2 or x.shape[1] != dim:
            fail(f"x_{part}", f"expected {kind} (N, {dim}), got {x.dtype} {x.shape}")
        if points and not np.isfinite(x).all():
            fail(f"x_{part}", "non-finite values")
        if y.dtype != np.int64 or y.shape != (len(x),):
            fail(f"y_{part}", f"expected int64 ({len(x)},), got {y.dtype} {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            fail(f"y_{part}", f"labels outside 0..{int(n_classes) - 1}")
        if part != "train":
            xb = data[f"xb_{part}"]
            if xb.dtype != kind or xb.shape != x.shape:
                fail(f"xb_{part}", f"expected {kind} {x.shape}, got {xb.dtype} {xb.shape}")
            if not points and xb.max(initial=0) > 1:
                fail(f"xb_{part}", "values outside {0, 1}")
    return data
