"""The trainer: determinism, kill -9 resume, corrupt checkpoints, non-finite losses, KL warm-up,
early stopping, configuration fingerprints, the run's files, and GMM-VAE initialisation."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import linear_sum_assignment

import vaepriors
from vaepriors.config import to_flags
from vaepriors.models import load_model
from vaepriors.training import CheckpointDir, NonFiniteLossError, Trainer, kl_weight
from vaepriors.training import run as run_module
from vaepriors.training import trainer as trainer_module
from vaepriors.training.run import model_for, train_group, train_run
from vaepriors.training.trainer import HISTORY_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train.py"
SRC = Path(vaepriors.__file__).resolve().parents[1]
LATENT = 2
CKPT_LOG = "vaepriors.training.checkpoint"


def make_trainer(family, data, train_cfg, model_cfg, run_dir, seed=0, run_config=None):
    torch.manual_seed(seed)
    model = model_for(family, LATENT, data.x_train.shape[1], 5, model_cfg)
    model.initialise(model_cfg.get("init", "torch"), data.x_train.mean(0))
    return Trainer(model, data, train_cfg, seed, run_dir,
                   run_config=run_config or {"model": family, "latent_dim": LATENT}, progress=False)


def without_seconds(history) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def model_pt_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]


def history_csv(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


# --- determinism --------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["nvae", "svae", "gmmvae", "ae"])
def test_same_seed_same_history_and_weights(family, processed_npz, train_cfg, model_cfg, tmp_path):
    train_cfg["max_epochs"] = 3
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        runs[name] = train_run(processed_npz, tmp_path / name, "synthetic", family, LATENT, seed,
                               train_cfg, model_cfg, progress=False)
    pd.testing.assert_frame_equal(history_csv(tmp_path / "a"), history_csv(tmp_path / "b"))
    assert_same_weights(model_pt_state(tmp_path / "a"), model_pt_state(tmp_path / "b"))
    assert runs["a"]["best_val_elbo"] == runs["b"]["best_val_elbo"]
    # another seed gives another run (the comparison above is not vacuous)
    assert not history_csv(tmp_path / "a").equals(history_csv(tmp_path / "c"))


# --- kill -9 and resume -------------------------------------------------------------------------

def _train_command(data, out_dir, family, seed, train_cfg, model_cfg) -> list[str]:
    return [sys.executable, str(SCRIPT), "--data", str(data), "--out-dir", str(out_dir),
            "--dataset", "synthetic", "--model", family, "--latent-dim", str(LATENT),
            "--seed", str(seed), "--no-progress",
            *shlex.split(to_flags(train_cfg)), *shlex.split(to_flags(model_cfg))]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    return env


def test_kill9_resume_matches_uninterrupted_run(processed_npz, train_cfg, model_cfg, tmp_path):
    """S-VAE (global RNG in the rejection sampler), GMM-VAE (pre-training, skipped on resume) and
    a group of two GMM-VAE seeds (stacked, its mixture parameters included), each run as a
    subprocess, killed with SIGKILL once its epoch-2 checkpoint exists and started again, end
    exactly as an uninterrupted run. The three run side by side to save time."""
    # Enough epochs that the kill (milliseconds after the epoch-2 checkpoint appears) lands
    # mid-run; patience is never reached.
    train_cfg.update(max_epochs=10, patience=1000, warmup_epochs=4)
    seed, group = 3, [3, 4]
    cmds = {f: _train_command(processed_npz, tmp_path / f, f, seed, train_cfg, model_cfg)
            for f in ("svae", "gmmvae")}
    group_dirs = [tmp_path / f"group-s{s}" for s in group]
    cmds["gmmvae-group"] = [*_train_command(processed_npz, group_dirs[0], "gmmvae", group[0], train_cfg,
                                            model_cfg), "--seeds", *map(str, group),
                            "--out-dirs", *map(str, group_dirs)]
    for flag in ("--seed", "--out-dir"):  # the group's command names its seeds and folders instead
        i = cmds["gmmvae-group"].index(flag)
        del cmds["gmmvae-group"][i : i + 2]
    runs = list(cmds)
    ckpts = {f: CheckpointDir(tmp_path / f / "checkpoints") for f in ("svae", "gmmvae")}
    ckpts["gmmvae-group"] = CheckpointDir(group_dirs[0] / "group-checkpoints")
    outputs = {"svae": [tmp_path / "svae"], "gmmvae": [tmp_path / "gmmvae"], "gmmvae-group": group_dirs}
    procs = {f: subprocess.Popen(cmds[f], env=_env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT) for f in runs}
    deadline = time.monotonic() + 180
    try:
        while any(p.returncode is None for p in procs.values()):
            for f, proc in procs.items():
                if proc.returncode is None and any(e >= 2 for e in ckpts[f].epochs()):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                assert proc.returncode is None or proc.returncode == -signal.SIGKILL, \
                    proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no checkpoint for epoch 2 within 180 s"
            time.sleep(0.005)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
    for f in runs:
        assert not any((d / "model.pt").exists() for d in outputs[f]), f"{f}: the run finished before the kill"
        assert 2 <= max(ckpts[f].epochs()) < train_cfg["max_epochs"], f

    resumed = {f: subprocess.Popen(cmds[f], env=_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for f in runs}
    references = {}
    for f in ("svae", "gmmvae"):  # the uninterrupted reference runs, while the resumed ones start
        references[f] = [tmp_path / f"{f}-reference"]
        train_run(processed_npz, references[f][0], "synthetic", f, LATENT, seed, train_cfg, model_cfg,
                  progress=False)
    references["gmmvae-group"] = [tmp_path / f"group-reference-s{s}" for s in group]
    train_group(processed_npz, references["gmmvae-group"], "synthetic", "gmmvae", LATENT, group,
                train_cfg, model_cfg, progress=False)
    for f in runs:
        output, _ = resumed[f].communicate(timeout=300)
        assert resumed[f].returncode == 0, output
        assert "resuming from" in output, output
        for out, ref in zip(outputs[f], references[f]):
            record = json.loads((out / "config.json").read_text())
            assert record["resumed"] is True and record["epochs"] == train_cfg["max_epochs"]
            pd.testing.assert_frame_equal(history_csv(out), history_csv(ref))
            assert_same_weights(model_pt_state(out), model_pt_state(ref))


# --- corrupt checkpoints ------------------------------------------------------------------------

def _corrupt(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(4096))
    elif how == "foreign":  # a readable torch file that is not a training checkpoint
        torch.save({"weights": torch.zeros(2)}, path)


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "foreign"])
def test_corrupt_newest_checkpoint_falls_back_to_previous(how, train_data, train_cfg, model_cfg,
                                                           tmp_path, caplog):
    train_cfg["max_epochs"] = 3
    first = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    first.fit()
    assert first.checkpoints.epochs() == [2, 3]  # the last two are kept
    newest = first.checkpoints.path(3)
    _corrupt(newest, how)

    again = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    with caplog.at_level(logging.INFO, logger=CKPT_LOG):
        summary = again.fit()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(newest) in w and "falling back" in w for w in warnings), warnings
    assert any(str(first.checkpoints.path(2)) in r.getMessage() and "resuming" in r.getMessage()
               for r in caplog.records)
    assert summary["resumed"] is True
    # epoch 3 was redone from the epoch-2 checkpoint, bit for bit
    assert without_seconds(again.history) == without_seconds(first.history)
    assert_same_weights(again.model.state_dict(), first.model.state_dict())


def test_all_checkpoints_corrupt_starts_over(train_data, train_cfg, model_cfg, tmp_path, caplog):
    train_cfg["max_epochs"] = 3
    first = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    first.fit()
    paths = [first.checkpoints.path(e) for e in first.checkpoints.epochs()]
    for path, how in zip(paths, ["garbage", "truncated"]):
        _corrupt(path, how)

    again = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    with caplog.at_level(logging.WARNING, logger=CKPT_LOG):
        summary = again.fit()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for path in paths:
        assert any(str(path) in m for m in messages), (path, messages)
    assert any("starting over" in m for m in messages), messages
    assert summary["resumed"] is False
    assert without_seconds(again.history) == without_seconds(first.history)
    assert_same_weights(again.model.state_dict(), first.model.state_dict())
    assert again.checkpoints.latest()["epoch"] == 3


def test_stale_unreadable_checkpoints_do_not_shadow_new_ones(tmp_path, caplog):
    ckpt = CheckpointDir(tmp_path)
    for epoch in (7, 8):
        ckpt.path(epoch).write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger=CKPT_LOG):
        assert ckpt.latest() is None
    ckpt.save({"epoch": 1}, 1)  # a run that started over writes its first checkpoint
    assert ckpt.latest()["epoch"] == 1
    for epoch in (2, 3):
        ckpt.save({"epoch": epoch}, epoch)
    assert ckpt.epochs() == [2, 3]


# --- non-finite losses --------------------------------------------------------------------------

@pytest.mark.parametrize("epoch, batch, quantity", [(1, 3, "kl"), (2, 1, "rec"), (2, 5, "loss")])
def test_non_finite_loss_names_epoch_batch_quantity(epoch, batch, quantity, train_data, train_cfg,
                                                    model_cfg, tmp_path):
    trainer = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    model = trainer.model
    per_epoch = -(-len(train_data.x_train) // train_cfg["batch_size"])
    target = (epoch - 1) * per_epoch + batch
    original, calls = model.loss, [0]

    def poisoned_loss(x, beta=1.0):
        terms = original(x, beta)
        if model.training:
            calls[0] += 1
            if calls[0] == target:
                terms = {**terms, quantity: terms[quantity] * float("nan")}
        return terms

    model.loss = poisoned_loss
    with pytest.raises(NonFiniteLossError, match=rf"non-finite {quantity} \(nan\) at epoch "
                                                 rf"{epoch}, batch {batch}$"):
        trainer.fit()
    assert calls[0] == target
    assert trainer.checkpoints.epochs() == list(range(1, epoch))[-2:]


def test_poisoned_weight_stops_the_run(train_data, train_cfg, model_cfg, tmp_path):
    trainer = make_trainer("svae", train_data, train_cfg, model_cfg, tmp_path)
    with torch.no_grad():
        trainer.model.decoder[0].weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"non-finite \w+ \((nan|inf|-inf)\) at epoch 1, batch 1$"):
        trainer.fit()
    assert trainer.checkpoints.epochs() == []


# --- KL warm-up and early stopping --------------------------------------------------------------

def test_kl_warmup_schedule(train_data, train_cfg, model_cfg, tmp_path):
    assert [kl_weight(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert kl_weight(0, 0) == 1.0 and kl_weight(0, 1) == 1.0

    train_cfg.update(max_epochs=5, warmup_epochs=3)
    trainer = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    original, seen = trainer.model.loss, []

    def recording_loss(x, beta=1.0):
        seen.append((trainer.model.training, trainer.epoch, beta))
        return original(x, beta)

    trainer.model.loss = recording_loss
    trainer.fit()
    expected = [1 / 3, 2 / 3, 1.0, 1.0, 1.0]
    assert [row["beta"] for row in trainer.history] == pytest.approx(expected)
    for epoch, beta in enumerate(expected):
        used = {b for training, e, b in seen if training and e == epoch}
        assert len(used) == 1 and used.pop() == pytest.approx(beta)
    assert {b for training, _, b in seen if not training} == {1.0}  # validation: the true ELBO


def test_early_stopping_keeps_best_weights(train_data, train_cfg, model_cfg, tmp_path, monkeypatch):
    train_cfg.update(max_epochs=20, patience=3)
    scripted = iter([-50.0, -40.0, -45.0, -41.0, -40.5, -10.0, -5.0])
    snapshots = []

    def fake_evaluate(model, x, device):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"elbo": next(scripted), "rec": 1.0, "kl": 1.0}

    monkeypatch.setattr(trainer_module, "evaluate_elbo", fake_evaluate)
    trainer = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    summary = trainer.fit()
    assert summary["stop_reason"] == "early_stopping"
    assert summary["epochs"] == 5 and len(trainer.history) == 5 and len(snapshots) == 5
    assert summary["best_epoch"] == 2 and summary["best_val_elbo"] == -40.0
    assert_same_weights(trainer.model.state_dict(), snapshots[1])
    assert not torch.equal(trainer.model.decoder[0].weight, snapshots[-1]["decoder.0.weight"])


def test_max_epochs_stop(train_data, train_cfg, model_cfg, tmp_path, monkeypatch):
    train_cfg.update(max_epochs=3, patience=1)
    scripted = iter([-50.0, -40.0, -30.0])
    monkeypatch.setattr(trainer_module, "evaluate_elbo",
                        lambda model, x, device: {"elbo": next(scripted), "rec": 1.0, "kl": 1.0})
    summary = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path).fit()
    assert summary["stop_reason"] == "max_epochs" and summary["best_epoch"] == 3


# --- configuration fingerprint ------------------------------------------------------------------

@pytest.mark.parametrize("change", ["lr", "seed", "latent_dim"])
def test_checkpoints_of_another_configuration_are_not_resumed(change, train_data, train_cfg,
                                                             model_cfg, tmp_path, caplog):
    train_cfg["max_epochs"] = 2
    make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path / "run").fit()
    seed, run_config = 0, None
    if change == "lr":
        train_cfg["lr"] = 0.001
    elif change == "seed":
        seed = 1
    else:
        run_config = {"model": "nvae", "latent_dim": LATENT, "note": "another model config"}

    other = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path / "run", seed, run_config)
    with caplog.at_level(logging.WARNING):
        summary = other.fit()
    assert summary["resumed"] is False
    assert any("another configuration" in r.getMessage() for r in caplog.records)
    fresh = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path / "fresh", seed, run_config)
    fresh.fit()
    assert without_seconds(other.history) == without_seconds(fresh.history)
    assert_same_weights(other.model.state_dict(), fresh.model.state_dict())


# --- the run's files ----------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["nvae", "ae"])
def test_train_run_writes_model_history_config(family, processed_npz, clustered_arrays, train_cfg,
                                               model_cfg, tmp_path, monkeypatch):
    initial_bias = {}

    class Spy(run_module.Trainer):
        def __init__(self, models, *args, **kwargs):
            initial_bias["bias"] = models[0].decoder[-1].bias.detach().clone()
            super().__init__(models, *args, **kwargs)

    monkeypatch.setattr(run_module, "Trainer", Spy)
    out = tmp_path / "results" / "models" / "synthetic" / family / f"d{LATENT}" / "s4"
    record = train_run(processed_npz, out, "synthetic", family, LATENT, 4, train_cfg, model_cfg,
                       progress=False)

    mean = torch.from_numpy(clustered_arrays["x_train"]).float().div(255).mean(0).clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(initial_bias["bias"], torch.log(mean / (1 - mean)))

    model = load_model(out / "model.pt")
    assert model.name == family and model.latent_dim == LATENT
    history = pd.read_csv(out / "history.csv")
    assert list(history.columns) == HISTORY_COLUMNS
    assert list(history["epoch"]) == list(range(1, train_cfg["max_epochs"] + 1))
    assert np.isfinite(history.drop(columns="seconds").to_numpy()).all()
    assert (history["seconds"] > 0).all()

    config = json.loads((out / "config.json").read_text())
    assert config == json.loads(json.dumps(record))
    assert config["seed"] == 4 and config["meta"]["seed"] == 4
    assert config["model"] == family and config["latent_dim"] == LATENT
    assert config["code_dim"] == LATENT and config["dataset"] == "synthetic"
    assert config["train"] == train_cfg and config["model_cfg"] == model_cfg
    assert config["meta"]["torch"] == torch.__version__
    assert config["meta"]["vaepriors"] == vaepriors.__version__
    for key in ("python", "numpy", "scipy", "scikit-learn"):
        assert config["meta"][key]
    assert config["best_val_elbo"] == pytest.approx(history["val_elbo"].max())
    assert config["best_epoch"] == int(history.loc[history["val_elbo"].idxmax(), "epoch"])
    assert config["resumed"] is False
    if family == "ae":
        assert config["ae_density"]["components"] == model.density_components
        assert set(config["ae_density"]["validation_log_density"]) == {"1", "3"}
    assert CheckpointDir(out / "checkpoints").epochs() == []  # a finished run leaves no checkpoints


# --- GMM-VAE initialisation ---------------------------------------------------------------------

def cluster_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to labels (Hungarian)."""
    k = max(labels.max(), clusters.max()) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(labels)


def test_gmmvae_pretraining_does_not_collapse(processed_npz, clustered_arrays, train_cfg, model_cfg,
                                              tmp_path):
    # What matters is the number of pre-training steps: on this fixture (10 batches an epoch)
    # 2 epochs give ~0.5-0.6 accuracy, 5 give ~0.7-0.8, 20 give ~1.0; none gives ~chance (0.2).
    train_cfg.update(max_epochs=10, warmup_epochs=3)
    model_cfg.update(gmm_pretrain_epochs=20)
    train_run(processed_npz, tmp_path, "synthetic", "gmmvae", LATENT, 0, train_cfg, model_cfg,
              progress=False)
    model = load_model(tmp_path / "model.pt")
    n_classes = int(clustered_arrays["n_classes"])
    assert model.n_components == n_classes
    x = torch.from_numpy(clustered_arrays["xb_test"]).float()
    torch.manual_seed(0)
    clusters = model.cluster(x).numpy()
    used = len(np.unique(clusters))
    accuracy = cluster_accuracy(clustered_arrays["y_test"], clusters)
    weights = torch.softmax(model.prior_logits, -1)
    print(f"GMM-VAE on the fixture: {used} clusters used, accuracy {accuracy:.3f} "
          f"(chance {1 / n_classes:.2f}), prior weights {weights.detach().numpy().round(3)}")
    assert used > 1
    assert accuracy > 0.9
    assert weights.min() > 0.05


def _denormal_survives() -> bool:
    # 1e-30 * 1e-10 = 1e-40 is a float32 denormal: zero when the CPU flushes, not otherwise.
    return bool(torch.tensor([1e-30]) * 1e-10 != 0)


def test_flush_denormals_inside_and_restored_after(train_data, train_cfg, model_cfg, tmp_path):
    from vaepriors.threads import flush_denormals, flushing_denormals

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    assert _denormal_survives() and not flushing_denormals()
    with flush_denormals():
        assert not _denormal_survives() and flushing_denormals()
        with flush_denormals():
            pass
        assert not _denormal_survives()  # the inner block leaves the outer mode alone
    assert _denormal_survives()
    # The trainer flushes while it trains (measured: epochs otherwise slow by up to 40% as weights
    # and Adam moments decay into denormals) and leaves the caller's mode as it was.
    seen = []
    trainer = make_trainer("nvae", train_data, train_cfg, model_cfg, tmp_path)
    original = trainer.model.loss
    trainer.model.loss = lambda *a, **k: (seen.append(flushing_denormals()), original(*a, **k))[1]
    trainer.train_epoch()
    assert seen and all(seen)
    assert _denormal_survives()
