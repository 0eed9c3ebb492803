"""Many seeds in one process: each seed of a group ends exactly where training it alone ends, for
every family.

Every comparison is against vaepriors.training.run.train_run on the same tiny fixture: weights of
model.pt, history.csv (bar the wall-time column) and config.json (bar run metadata)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import vaepriors
from vaepriors import families
from vaepriors.config import to_flags
from vaepriors.training import CheckpointDir
from vaepriors.training import trainer as trainer_module
from vaepriors.training.run import model_for, train_group, train_run
from vaepriors.training.trainer import binarize, draw_epoch, draw_epoch_bool

REPO = Path(__file__).resolve().parents[1]
SRC = Path(vaepriors.__file__).resolve().parents[1]
# Weights after a few epochs: batched and single matmuls give the same numbers on CPU, so any gap
# is float rounding in reductions (fused Adam, the vMF quadrature), far below these tolerances.
RTOL, ATOL = 1e-4, 1e-5


def load_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", weights_only=True)


def history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv").drop(columns="seconds")


def config(run_dir: Path) -> dict:
    record = json.loads((run_dir / "config.json").read_text())
    record.pop("meta")
    return record


def assert_same_run(group_dir: Path, alone_dir: Path) -> None:
    a, b = load_state(group_dir), load_state(alone_dir)
    assert a["model"] == b["model"] and a["kwargs"] == b["kwargs"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=RTOL, atol=ATOL,
                                   msg=lambda m, key=key: f"{group_dir.name} {key}: {m}")
    pd.testing.assert_frame_equal(history(group_dir), history(alone_dir), rtol=RTOL, atol=ATOL)
    ca, cb = config(group_dir), config(alone_dir)
    assert ca.pop("best_val_elbo") == pytest.approx(cb.pop("best_val_elbo"), rel=RTOL)
    if "ae_density" in ca:
        da, db = ca.pop("ae_density"), cb.pop("ae_density")
        assert da["components"] == db["components"]
        for k, v in db["validation_log_density"].items():
            assert da["validation_log_density"][k] == pytest.approx(v, rel=1e-3, abs=1e-3)
    assert ca == cb


def assert_identical_runs(dirs, reference_dirs) -> None:
    """Bit for bit: model.pt weights and history.csv (bar the wall time) of each pair of runs."""
    for a, b in zip(dirs, reference_dirs, strict=True):
        sa, sb = load_state(a)["state_dict"], load_state(b)["state_dict"]
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key
        pd.testing.assert_frame_equal(history(a), history(b))


def run_both(family, latent, seeds, processed_npz, train_cfg, model_cfg, tmp_path):
    group_dirs = [tmp_path / "group" / f"s{s}" for s in seeds]
    records = train_group(processed_npz, group_dirs, "synthetic", family, latent, seeds, train_cfg,
                          model_cfg, progress=False)
    for seed, gdir, record in zip(seeds, group_dirs, records):
        alone = tmp_path / "alone" / f"s{seed}"
        train_run(processed_npz, alone, "synthetic", family, latent, seed, train_cfg, model_cfg,
                  progress=False)
        assert_same_run(gdir, alone)
        assert record["seed"] == seed
        assert CheckpointDir(gdir / "checkpoints").epochs() == []
    assert CheckpointDir(group_dirs[0] / "group-checkpoints").epochs() == []
    return group_dirs


@pytest.mark.parametrize("family,latent", [("nvae", 2), ("svae", 2), ("svae", 3), ("ae", 2), ("gmmvae", 2),
                                           ("vamp", 2), ("lvae", 2), ("psvae", 3)])
def test_group_matches_single_seed_runs(family, latent, processed_npz, train_cfg, model_cfg,
                                        tmp_path):
    """svae d=2 is the closed-form sampler (S^2), d=3 Wood's rejection sampler; gmmvae pre-trains
    and fits its mixture per seed, and it and vamp stack parameters outside linear layers."""
    train_cfg["max_epochs"] = 3
    dirs = run_both(family, latent, [0, 1, 5], processed_npz, train_cfg, model_cfg, tmp_path)
    # different seeds give different runs (the comparison is not vacuous)
    assert not history(dirs[0]).equals(history(dirs[1]))


@pytest.mark.parametrize("family,latent", [("nvae", 2), ("svae", 1), ("vamp", 2)])
def test_group_matches_single_seed_runs_on_continuous_data(family, latent, train_cfg, model_cfg, tmp_path):
    """The circle toy's decoder sweep trains its seeds stacked: a Gaussian likelihood (its learned
    scale is a parameter outside the linear layers) and a decoder of its own size stack too."""
    from vaepriors.data.prepare import prepare_dataset

    data = tmp_path / "circle.npz"
    prepare_dataset("circle", tmp_path / "raw", data, n_validation=100, max_train=200)
    train_cfg["max_epochs"] = 2
    model_cfg = {**model_cfg, "likelihood": "gaussian", "decoder_hidden": [16, 8]}
    dirs = run_both(family, latent, [0, 2], data, train_cfg, model_cfg, tmp_path)
    assert not history(dirs[0]).equals(history(dirs[1]))
    scale = load_state(dirs[0])["state_dict"]["obs_log_scale"]
    assert scale.shape == (100,) and scale.abs().max() > 0  # learned, per seed


def test_early_stopped_seed_leaves_the_group_untouched(processed_npz, train_cfg, model_cfg, tmp_path):
    """Patience 1 and a large step: seeds stop at different epochs; each must match its own
    single-seed run, which only holds if a stopped seed's weights and Adam state stay frozen."""
    train_cfg.update(max_epochs=8, patience=1, warmup_epochs=0, lr=0.1)
    dirs = run_both("nvae", 2, [0, 1, 2, 3], processed_npz, train_cfg, model_cfg, tmp_path)
    epochs = [config(d)["epochs"] for d in dirs]
    stops = [config(d)["stop_reason"] for d in dirs]
    assert "early_stopping" in stops and len(set(epochs)) > 1, (epochs, stops)


def test_every_registered_family_stacks():
    """No family is left out of stacked training (no per-family opt-in exists any more): a model of
    each builtin family goes through the stack and its loss has one value per seed."""
    import torch as _torch

    from vaepriors.training.stack import NoiseRng, Stack

    x = (_torch.rand(2, 5, 16) < 0.5).float()
    for name in families.names():
        models = []
        for s in (0, 1):
            _torch.manual_seed(s)
            models.append(model_for(name, 2, 16, 3, {"hidden": [8], "vamp_components": 4}))
        terms = Stack.from_models(models, _torch.device("cpu")).loss(
            x, 1.0, [NoiseRng(s, _torch.device("cpu")) for s in (0, 1)])
        assert terms["loss"].shape == (2,) and _torch.isfinite(terms["loss"]).all(), name


def test_a_draw_outside_the_noise_groups_is_refused(processed_npz, train_cfg, model_cfg, tmp_path,
                                                    monkeypatch):
    """A posterior that draws from torch's global stream would give the stacked seeds one shared
    noise: the group stops with the family named, before any epoch is kept."""
    from vaepriors.models.gaussian import NVAE

    train_cfg["max_epochs"] = 2
    original = NVAE.loss

    def global_draw(self, x, beta=1.0):
        torch.randn(1)
        return original(self, x, beta)

    monkeypatch.setattr(NVAE, "loss", global_draw)
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    with pytest.raises(RuntimeError, match="the nvae posterior drew noise outside"):
        train_group(processed_npz, dirs, "synthetic", "nvae", 2, [0, 1], train_cfg, model_cfg, progress=False)
    assert CheckpointDir(dirs[0] / "group-checkpoints").epochs() == []


def assert_killed_group_resumes(family, processed_npz, train_cfg, model_cfg, tmp_path, monkeypatch):
    """A group of two seeds that dies after epoch 2 (checkpoint written) and is started again ends
    as the uninterrupted group does."""
    train_cfg["max_epochs"] = 4
    seeds = [0, 1]
    full = [tmp_path / "full" / f"s{s}" for s in seeds]
    train_group(processed_npz, full, "synthetic", family, 3, seeds, train_cfg, model_cfg,
                progress=False)

    killed = [tmp_path / "killed" / f"s{s}" for s in seeds]
    original = trainer_module.Trainer.train_epoch

    def dying(self):
        if self.epoch == 2:
            raise KeyboardInterrupt("killed")
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        train_group(processed_npz, killed, "synthetic", family, 3, seeds, train_cfg, model_cfg,
                    progress=False)
    assert CheckpointDir(killed[0] / "group-checkpoints").epochs() == [1, 2]
    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", original)
    records = train_group(processed_npz, killed, "synthetic", family, 3, seeds, train_cfg, model_cfg,
                          progress=False)
    assert all(r["resumed"] for r in records)
    assert_identical_runs(killed, full)


@pytest.mark.parametrize("family", ["svae", "gmmvae"])
def test_killed_group_resumes_to_the_same_result(family, processed_npz, train_cfg, model_cfg, tmp_path,
                                                 monkeypatch):
    """gmmvae: its pre-training is not repeated on resume."""
    assert_killed_group_resumes(family, processed_npz, train_cfg, model_cfg, tmp_path, monkeypatch)


def test_group_killed_with_one_seed_left_resumes_to_the_same_result(processed_npz, train_cfg, model_cfg,
                                                                   tmp_path, monkeypatch):
    """Killed once all seeds but one left the group (the checkpoint holds that seed's parameters
    and Adam moments still stacked), started again: ends as the uninterrupted group."""
    train_cfg.update(max_epochs=8, patience=1, warmup_epochs=0, lr=0.1)
    seeds = [0, 1, 2, 3]
    full = [tmp_path / "full" / f"s{s}" for s in seeds]
    train_group(processed_npz, full, "synthetic", "nvae", 2, seeds, train_cfg, model_cfg, progress=False)
    epochs = sorted(config(d)["epochs"] for d in full)
    assert epochs[-2] < epochs[-1]  # one seed trains alone at the end

    killed = [tmp_path / "killed" / f"s{s}" for s in seeds]
    original = trainer_module.Trainer.train_epoch

    def dying(self):
        if len(self.active) == 1:
            raise KeyboardInterrupt("killed")
        return original(self)

    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        train_group(processed_npz, killed, "synthetic", "nvae", 2, seeds, train_cfg, model_cfg, progress=False)
    monkeypatch.setattr(trainer_module.Trainer, "train_epoch", original)
    records = train_group(processed_npz, killed, "synthetic", "nvae", 2, seeds, train_cfg, model_cfg,
                          progress=False)
    assert all(r["resumed"] for r in records)
    assert_identical_runs(killed, full)


def test_checkpoint_of_another_seed_set_is_not_resumed(processed_npz, train_cfg, model_cfg, tmp_path,
                                                       caplog):
    train_cfg["max_epochs"] = 2
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    group = trainer_module.Trainer
    # leave a checkpoint of seeds (0, 1) behind, then train seeds (0, 2) into the same first dir
    trainer_models = []
    for s in (0, 1):
        torch.manual_seed(s)
        trainer_models.append(model_for("nvae", 2, 64, 5, model_cfg))
    from vaepriors.data.prepare import load_processed
    from vaepriors.training import TrainData
    data = TrainData.from_arrays(load_processed(processed_npz))
    g = group(trainer_models, data, train_cfg, [0, 1], dirs, progress=False)
    g.train_epoch()
    g.epoch = 1
    g.checkpoints.save(g.state(), 1)
    with caplog.at_level("WARNING"):
        records = train_group(processed_npz, [dirs[0], tmp_path / "s2"], "synthetic", "nvae", 2,
                              [0, 2], train_cfg, model_cfg, progress=False)
    assert "belong to another configuration" in caplog.text
    assert not any(r["resumed"] for r in records)


def test_binarize_draws_what_torch_bernoulli_draws():
    """The trainer's fast binarisation consumes the generator exactly as torch.bernoulli does."""
    x = torch.rand(300, 64)
    x[0, :3] = torch.tensor([0.0, 1.0, 0.5])
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(2):
        assert torch.equal(binarize(x, g1), torch.bernoulli(x, generator=g2))
    assert torch.equal(torch.randperm(50, generator=g1), torch.randperm(50, generator=g2))


def test_group_binarisation_is_the_trainers(monkeypatch):
    """Row blocks of uniforms come out of the generator as one call for the whole set does."""
    monkeypatch.setattr(trainer_module, "BINARIZE_ROWS", 7)
    x = torch.rand(50, 64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(2):
        (xb, perm), (xb_bool, perm_bool) = draw_epoch(x, g1), draw_epoch_bool(x, g2)
        assert xb_bool.dtype == torch.bool
        assert torch.equal(xb, xb_bool.float()) and torch.equal(perm, perm_bool)


def test_train_script_takes_several_seeds(processed_npz, train_cfg, model_cfg, tmp_path):
    train_cfg["max_epochs"] = 2
    dirs = [tmp_path / "a", tmp_path / "b"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--data", str(processed_npz),
           "--dataset", "synthetic", "--model", "nvae", "--latent-dim", "2", "--seeds", "3", "4",
           "--out-dirs", *map(str, dirs), "--no-progress",
           *to_flags(train_cfg).split(), *to_flags(model_cfg).split()]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seed, d in zip((3, 4), dirs):
        assert json.loads((d / "config.json").read_text())["seed"] == seed
        assert np.isfinite(history(d).to_numpy()).all()


def test_bench_quick_pieces_without_pythae(tmp_path):
    """The benchmark's --quick pieces that need no pythae run (a few seconds) and write JSON."""
    out = tmp_path / "speed.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_speed.py"), "--quick", "--no-pythae",
           "--only", "eval", "multiseed", "--models", "nvae", "--out", str(out)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["eval"]["nvae"]["ours_pairs_per_s"] > 0
    assert 0 < res["ratios"]["eval_nvae_roofline_fraction"]


def test_snakemake_groups_seeds_when_asked(tmp_path):
    """seeds_per_job > 1: one grouped job per block of consecutive seeds for every family;
    seeds_per_job = 1 keeps the per-seed rule only."""
    cfg = yaml.safe_load((REPO / "params.yaml").read_text())
    seeds, k = cfg["seeds"], 4
    override = tmp_path / "group.yaml"
    override.write_text(f"train:\n  seeds_per_job: {k}\n")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "-n", "--forceall", "--quiet", "rules"]
    out = subprocess.run([*cmd, "--configfile", str(override)], check=False, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in out.stdout.splitlines()
              if ln.strip().startswith("train")}
    configs = len(cfg["datasets"]) * len(cfg["latent_dims"])
    expected = {f"train_seeds_{g[0]}_{g[-1]}": configs * len(cfg["models"])
                for g in (seeds[i : i + k] for i in range(0, len(seeds), k))}
    assert counts == expected
    out = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not any(ln.strip().startswith("train_seeds") for ln in out.stdout.splitlines())
