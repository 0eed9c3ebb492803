"""Prepared data: deterministic split and binarisation, sizes, classes, the processed format."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vaepriors.data.download import fetch_dataset
from vaepriors.data.prepare import (
    KEYS,
    PrepareError,
    ProcessedDataError,
    load_processed,
    prepare_dataset,
    split_official,
    split_three,
)
from vaepriors.data.registry import ENV_MIRRORS

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_format(data, n_train, n_val, n_test, shape, n_classes=10):
    assert set(KEYS) <= set(data)
    dim = int(np.prod(shape))
    for part, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        assert data[f"x_{part}"].shape == (n, dim) and data[f"x_{part}"].dtype == np.uint8
        assert data[f"y_{part}"].shape == (n,) and data[f"y_{part}"].dtype == np.int64
        # Every split holds every class.
        assert set(np.unique(data[f"y_{part}"])) == set(range(n_classes))
    for part in ("val", "test"):
        xb = data[f"xb_{part}"]
        assert xb.dtype == np.uint8 and xb.shape == data[f"x_{part}"].shape
        assert set(np.unique(xb)) <= {0, 1}
        # Bernoulli(x/255): the binary mean follows the grey mean.
        assert abs(xb.mean() - data[f"x_{part}"].mean() / 255) < 0.01
    assert tuple(data["image_shape"]) == shape and data["image_shape"].dtype == np.int64
    assert int(data["n_classes"]) == n_classes


def test_synthetic_is_identical_across_runs(tmp_path):
    a = prepare_dataset("synthetic", tmp_path, tmp_path / "a.npz", 0, 1, 300)
    b = prepare_dataset("synthetic", tmp_path, tmp_path / "b.npz", 0, 1, 300)
    loaded_a, loaded_b = load_processed(tmp_path / "a.npz"), load_processed(tmp_path / "b.npz")
    for key in KEYS:
        assert loaded_a[key].dtype == loaded_b[key].dtype
        assert loaded_a[key].tobytes() == loaded_b[key].tobytes(), key
        assert loaded_a[key].tobytes() == a[key].tobytes() == b[key].tobytes(), key
    check_format(loaded_a, 2400, 300, 300, (8, 8))
    # Only the .npz files: the temporary file was renamed or removed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]


def test_seeds_change_split_and_binarisation(tmp_path):
    base = prepare_dataset("synthetic", tmp_path, tmp_path / "a.npz", 0, 1, 300)
    other_split = prepare_dataset("synthetic", tmp_path, tmp_path / "b.npz", 1, 1, 300)
    other_binary = prepare_dataset("synthetic", tmp_path, tmp_path / "c.npz", 0, 2, 300)
    assert not np.array_equal(base["x_val"], other_split["x_val"])
    np.testing.assert_array_equal(base["x_val"], other_binary["x_val"])
    assert not np.array_equal(base["xb_val"], other_binary["xb_val"])


def test_splits_are_disjoint_and_complete():
    full, val = split_official(60000, 10000, seed=0)
    assert len(full) == 50000 and len(val) == 10000
    assert np.array_equal(np.sort(np.concatenate([full, val])), np.arange(60000))
    train, val, test = split_three(1797, 300, seed=0)
    assert (len(train), len(val), len(test)) == (1197, 300, 300)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1797))
    capped, _ = split_official(60000, 10000, seed=0, max_train=1000)
    assert len(capped) == 1000 and set(capped.tolist()) <= set(full.tolist())


def test_digits(tmp_path):
    data = prepare_dataset("digits", tmp_path, tmp_path / "digits.npz", 0, 1, 300)
    check_format(load_processed(tmp_path / "digits.npz"), 1197, 300, 300, (8, 8))
    assert data["x_train"].max() == 255  # 0..16 scaled to the full 0..255 range


def test_max_train_caps_training_set(tmp_path):
    data = prepare_dataset("digits", tmp_path, tmp_path / "d.npz", 0, 1, 300, max_train=500)
    assert len(data["x_train"]) == 500 and len(data["x_val"]) == 300


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(PrepareError, match="n_validation=10000 is too large for 1797"):
        prepare_dataset("digits", tmp_path, tmp_path / "d.npz", 0, 1, 10000)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        prepare_dataset("cifar", tmp_path, tmp_path / "c.npz", 0, 1, 300)
    with pytest.raises(PrepareError, match=r"missing; run scripts/download.py --dataset mnist"):
        prepare_dataset("mnist", tmp_path / "raw", tmp_path / "m.npz", 0, 1, 10000)
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "m.npz").exists()


def test_load_processed_names_file_and_key(tmp_path):
    data = prepare_dataset("synthetic", tmp_path, tmp_path / "ok.npz", 0, 1, 300)
    broken = dict(data, y_val=data["y_val"].astype(np.int32))
    np.savez(tmp_path / "bad.npz", **broken)
    with pytest.raises(ProcessedDataError, match=r"bad\.npz: key 'y_val': expected int64"):
        load_processed(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", **{k: v for k, v in data.items() if k != "xb_test"})
    with pytest.raises(ProcessedDataError, match=r"short\.npz: missing keys \['xb_test'\]"):
        load_processed(tmp_path / "short.npz")
    with pytest.raises(ProcessedDataError, match="not found"):
        load_processed(tmp_path / "absent.npz")


def test_prepare_script_takes_dvc_style_flags(tmp_path, capsys):
    script = load_script("prepare")
    flags = ["--raw_dir", str(tmp_path / "raw"), "--processed_dir", str(tmp_path / "processed"),
             "--mirrors", "--split_seed", "0", "--binarize_seed", "1", "--n_validation", "300",
             "--max_train", "0"]
    assert script.main(["--dataset", "synthetic", *flags]) == 0
    assert "synthetic: train 2400 / val 300 / test 300" in capsys.readouterr().out
    check_format(load_processed(tmp_path / "processed" / "synthetic.npz"), 2400, 300, 300, (8, 8))
    # A list written as several values, and an empty list written as nothing at all.
    out = tmp_path / "x.npz"
    flags_list = [f for f in flags if f != "--mirrors"] + ["--mirrors", "a", "b"]
    assert script.main(["--dataset", "digits", "--out", str(out), *flags_list]) == 0
    no_list = [f for f in flags if f != "--mirrors"]
    assert script.main(["--dataset", "digits", "--out", str(out), *no_list]) == 0


def test_download_script_snapshots_offline_sets(tmp_path):
    """digits enters the DAG through the raw directory like the IDX sets: a verified snapshot that
    prepare reads back; a tampered snapshot is rejected with the file named."""
    script = load_script("download")
    flags = ["--raw_dir", str(tmp_path), "--processed_dir", "p", "--split_seed", "0",
             "--binarize_seed", "1", "--n_validation", "300", "--max_train", "0"]
    assert script.main(["--dataset", "digits", *flags]) == 0
    snapshot = tmp_path / "digits" / "digits.npz"
    assert snapshot.is_file() and [p.name for p in snapshot.parent.iterdir()] == ["digits.npz"]
    data = prepare_dataset("digits", tmp_path, tmp_path / "d.npz", 0, 1, 300)
    assert len(data["x_train"]) == 1197
    with np.load(snapshot) as raw:
        x, y = raw["x"].copy(), raw["y"]
    x[0, 0] ^= 1
    np.savez(snapshot, x=x, y=y)
    with pytest.raises(PrepareError, match="digits.npz"):
        prepare_dataset("digits", tmp_path, tmp_path / "e.npz", 0, 1, 300)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason=f"{DEBIAN_FASHION} absent (install Debian's dataset-fashion-mnist)")
def test_fashion_mnist_from_debian(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_MIRRORS, raising=False)
    paths = fetch_dataset("fashion_mnist", tmp_path / "raw", progress=False)
    assert sorted(p.name for p in (tmp_path / "raw" / "fashion_mnist").iterdir()) == sorted(paths)
    prepare_dataset("fashion_mnist", tmp_path / "raw", tmp_path / "fm.npz", 0, 1, 10000)
    check_format(load_processed(tmp_path / "fm.npz"), 50000, 10000, 10000, (28, 28))
