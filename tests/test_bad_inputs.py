"""Damaged inputs of a job: the error names the file, says how to regenerate it, never advises an
unsafe load, and the job leaves no output behind (issue 19)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from vaepriors.config import REPO_ROOT
from vaepriors.data.prepare import ProcessedDataError, load_processed
from vaepriors.figures.frechet import load_classifier
from vaepriors.models import TorchFileError, build_model, load_model, save_model
from vaepriors.training import CheckpointDir, CheckpointError

EVALUATE_FLAGS = ("--importance_samples", 10, "--chunk_elements", 100000, "--knn_labels", 10, "--knn_k", 1,
                  "--kmeans_n_init", 1, "--ae_scale_grid", 0.1, "--threads", 1)
UNSAFE = ("weights_only=False", "weights_only` set to `False", "allow_pickle=True", "allow_pickle=`")


class NotATensor:
    pass


def damaged_copies(good: bytes) -> dict[str, bytes]:
    return {
        "empty": b"",
        "garbage": b"not a torch file " * 20,
        "truncated_head": good[:10],
        "truncated_half": good[: len(good) // 2],
        "truncated_tail": good[:-1],
        "zeroed_middle": good[: len(good) // 3] + bytes(200) + good[len(good) // 3 + 200 :],
        # a pickle that is no tensor file: torch's message would advise weights_only=False
        "foreign_pickle": pickle.dumps({"model": NotATensor()}),
    }


def assert_clear(text: str, path) -> None:
    assert str(path) in text
    assert not any(advice in text for advice in UNSAFE), text


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def good_model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(build_model("nvae", input_dim=64, latent_dim=2, hidden=[8]), path)
    return path.read_bytes()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("damage", list(damaged_copies(b"x" * 1000)))
def test_damaged_model_names_the_file_and_how_to_regenerate_it(tmp_path, good_model_bytes, damage):
    path = tmp_path / "results" / "models" / "model.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(damaged_copies(good_model_bytes)[damage])
    with pytest.raises(TorchFileError) as info:
        load_model(path)
    message = str(info.value)
    assert_clear(message, path)
    assert f"--forcerun {path}" in message
    # no chained exception carries torch's original text into the traceback
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_model_file_of_another_kind_is_named(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(TorchFileError, match="a torch file but not a vaepriors model") as info:
        load_model(path)
    assert "['weights']" in str(info.value) and f"--forcerun {path}" in str(info.value)


# What each damaged file is, as the message must say it (issue 27: plain text was once reported
# as "holds objects other than tensors").
FOUND = {"empty": "an empty file", "garbage": "neither a zip archive nor a pickle",
         "truncated_head": "a truncated zip archive", "truncated_half": "a truncated zip archive",
         "truncated_tail": "a truncated zip archive", "zeroed_middle": "a zip archive with a bad checksum",
         "foreign_pickle": {"model": "a pickle that holds objects other than tensors",
                            "npz": "a pickle, not a zip archive"}}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("damage", list(FOUND))
def test_each_damage_is_named_for_what_it_is(tmp_path, good_model_bytes, processed_npz, damage):
    for kind, good, load in (("model", good_model_bytes, load_model),
                             ("npz", processed_npz.read_bytes(), load_processed)):
        path = tmp_path / f"file.{kind}"
        path.write_bytes(damaged_copies(good)[damage])
        with pytest.raises((TorchFileError, ProcessedDataError)) as info:
            load(path)
        found = FOUND[damage] if isinstance(FOUND[damage], str) else FOUND[damage][kind]
        assert found in str(info.value), (kind, str(info.value))
        others = {f for f in FOUND.values() if isinstance(f, str)} - {found}
        assert not any(other in str(info.value) for other in others), str(info.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("damage", ["garbage", "truncated_half", "foreign_pickle"])
def test_damaged_classifier_and_checkpoint_name_the_file(tmp_path, good_model_bytes, damage):
    data = damaged_copies(good_model_bytes)[damage]
    clf = tmp_path / "classifier.pt"
    clf.write_bytes(data)
    with pytest.raises(TorchFileError) as info:
        load_classifier(clf)
    assert_clear(str(info.value), clf)
    ckpt = CheckpointDir(tmp_path / "ckpt")
    ckpt.path(3).write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        ckpt.read(ckpt.path(3))
    assert_clear(str(info.value), ckpt.path(3))


@pytest.fixture
def run_dir(tmp_path):
    """A run directory as `train` leaves it (model.pt, config.json) with a damaged model.pt."""
    run = tmp_path / "results" / "models" / "synthetic" / "nvae" / "d2" / "s0"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"PK\x03\x04 truncated")
    (run / "config.json").write_text(json.dumps(
        {"dataset": "synthetic", "model": "nvae", "latent_dim": 2, "code_dim": 2, "seed": 0}))
    return run


def test_evaluate_job_with_damaged_model_fails_naming_it_and_writes_nothing(tmp_path, run_dir, processed_npz):
    out = tmp_path / "results" / "metrics" / "s0.json"
    res = run_script("scripts/evaluate.py", "--data", processed_npz, "--model", run_dir / "model.pt",
                     "--out", out, "--seed", 0, "--no-progress", *EVALUATE_FLAGS)
    assert res.returncode != 0
    assert_clear(res.stderr, run_dir / "model.pt")
    assert "Traceback" not in res.stderr and "--forcerun" in res.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_evaluate_job_with_damaged_run_config_names_it(tmp_path, run_dir, processed_npz):
    (run_dir / "config.json").write_text('{"dataset": "synthetic", "mod')
    out = tmp_path / "metrics.json"
    res = run_script("scripts/evaluate.py", "--data", processed_npz, "--model", run_dir / "model.pt",
                     "--out", out, "--seed", 0, *EVALUATE_FLAGS)
    assert res.returncode != 0 and str(run_dir / "config.json") in res.stderr and not out.exists()


# --- processed data ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated_head", "truncated_half", "truncated_tail",
                                    "zeroed_middle", "foreign_pickle"])
def test_damaged_processed_data_names_the_file_and_how_to_rebuild_it(tmp_path, processed_npz, damage):
    path = tmp_path / "data" / "processed" / "synthetic.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(damaged_copies(processed_npz.read_bytes())[damage])
    with pytest.raises(ProcessedDataError) as info:
        load_processed(path)
    assert_clear(str(info.value), path)
    # Snakemake would not rebuild it on its own (newer than its inputs): the message says how
    assert f"snakemake --cores 1 --force {path}" in str(info.value)


def test_train_job_with_damaged_data_fails_naming_it_and_writes_nothing(tmp_path, train_cfg, model_cfg):
    from vaepriors.config import to_flags

    data = tmp_path / "synthetic.npz"
    data.write_bytes(b"PK\x03\x04" + bytes(100))
    out_dir = tmp_path / "run"
    res = run_script("scripts/train.py", "--data", data, "--out-dir", out_dir, "--dataset", "synthetic",
                     "--model", "nvae", "--latent-dim", 2, "--seed", 0, "--no-progress",
                     *to_flags(train_cfg).split(), *to_flags(model_cfg).split())
    assert res.returncode != 0
    assert_clear(res.stderr, data)
    assert "Traceback" not in res.stderr and "--force" in res.stderr
    assert not out_dir.exists() or not any(out_dir.rglob("*.*"))


# --- per-run metrics read by aggregate -------------------------------------------------------------

def test_aggregate_with_damaged_metrics_names_the_file_and_writes_no_table(tmp_path):
    good = {"dataset": "synthetic", "model": "nvae", "latent_dim": 2, "code_dim": 2, "seed": 0,
            "loglik": {"mean": -50.0, "sd": 1.0}}
    first, second = tmp_path / "s0.json", tmp_path / "s1.json"
    first.write_text(json.dumps(good))
    second.write_text(json.dumps({**good, "seed": 1})[:40])  # truncated mid-write
    tables = tmp_path / "tables"
    res = run_script("scripts/aggregate.py", "--metrics", first, second, "--out-dir", tables)
    assert res.returncode != 0
    assert str(second) in res.stderr and "JSON" in res.stderr and f"--forcerun {second}" in res.stderr
    assert "Traceback" not in res.stderr
    assert not tables.exists() or not any(tables.iterdir())

    second.write_text(json.dumps({"loglik": {}}))  # valid JSON, not a metrics file
    res = run_script("scripts/aggregate.py", "--metrics", first, second, "--out-dir", tables)
    assert res.returncode != 0 and str(second) in res.stderr and "missing keys" in res.stderr
    assert not tables.exists() or not any(tables.iterdir())


def test_processed_npz_fixture_is_loadable(processed_npz):
    # the damaged copies above start from a file that does load
    assert load_processed(processed_npz)["x_train"].dtype == np.uint8
