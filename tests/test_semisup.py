"""Semi-supervised M2 and M1+M2 (vaepriors.models.m2, vaepriors.semisup): the bounds against a
computation by hand, the exact sum over classes, the labelled sets, a toy problem where M2 must
beat its classifier trained on the labelled points alone, and resume after an interruption."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import special, stats

from vaepriors import semisup
from vaepriors.config import REPO_ROOT, ConfigError, load_params
from vaepriors.evaluation import knn
from vaepriors.models.m2 import M2
from vaepriors.training.checkpoint import CheckpointDir

pytestmark = pytest.mark.usefixtures("single_torch_thread")

TINY = {"m2_dim": 2, "hidden": 16, "epochs": 4, "patience": 0, "lr": 0.003, "batch_size": 64,
        "alpha": 0.1}


def _mean_sampler(model, monkeypatch):
    """z = the posterior mean instead of a draw: the bounds become deterministic."""
    posterior = model.latent.posterior

    def deterministic(inp):
        q = posterior(inp)
        q.rsample = lambda sample_shape=(): q.mean
        return q

    monkeypatch.setattr(model.latent, "posterior", deterministic)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_unlabelled_bound_is_the_labelled_bound_under_q_plus_entropy(likelihood, monkeypatch):
    torch.manual_seed(0)
    d, k = 6, 3
    model = M2("nvae", d, k, latent_dim=2, hidden=5, likelihood=likelihood).double()
    _mean_sampler(model, monkeypatch)
    x = torch.bernoulli(torch.full((4, d), 0.4, dtype=torch.float64))
    with torch.no_grad():
        ours = model.unlabelled_bound(x).numpy()
        pi = special.softmax(model.classify(x).numpy(), axis=-1)
        by_hand = np.zeros((len(x), k))
        for y in range(k):
            onehot = torch.nn.functional.one_hot(torch.full((len(x),), y), k).double()
            mu, logvar = model.latent.head(model.latent.body(torch.cat([x, onehot], -1))).chunk(2, -1)
            mu, var = mu.numpy(), np.exp(logvar.numpy())
            out = model.latent.decoder(torch.cat([torch.from_numpy(mu), onehot], -1)).numpy()
            if likelihood == "bernoulli":
                log_px = stats.bernoulli.logpmf(x.numpy(), special.expit(out)).sum(-1)
            else:
                mean, log_var = np.split(out, 2, axis=-1)
                log_px = stats.norm.logpdf(x.numpy(), mean, np.exp(0.5 * log_var)).sum(-1)
            kl = 0.5 * (var + mu**2 - 1 - np.log(var)).sum(-1)
            by_hand[:, y] = log_px - kl + np.log(1 / k)
    expected = (pi * by_hand).sum(-1) + stats.entropy(pi, axis=-1)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    # and the labelled bound alone, class by class
    for y in range(k):
        got = model.labelled_bound(x, torch.full((len(x),), y)).detach().numpy()
        np.testing.assert_allclose(got, by_hand[:, y], rtol=1e-10)


@pytest.mark.parametrize("family", ["nvae", "svae"])
def test_the_sum_over_classes_is_exact(family):
    """Changing one class's bound (its decoder input weights) moves U by q(y|x) times the change:
    every class is in the sum, none sampled."""
    torch.manual_seed(1)
    d, k = 6, 4
    model = M2(family, d, k, latent_dim=3, hidden=8, likelihood="bernoulli")
    x = torch.bernoulli(torch.full((5, d), 0.5))
    first = model.latent.decoder[0]

    def seeded(fn):
        torch.manual_seed(7)  # the same z draws each time: they depend on the encoder only
        with torch.no_grad():
            return fn(x).double()

    def bounds():
        return seeded(model.class_bounds), seeded(model.unlabelled_bound)

    with torch.no_grad():
        pi = torch.softmax(model.classify(x), -1).double()
    before, u_before = bounds()
    for y in range(k):
        with torch.no_grad():
            first.weight[:, model.latent.code_dim + y] += 0.5
        after, u_after = bounds()
        change = after - before
        assert (change[:, y].abs() > 1e-6).all()
        others = [j for j in range(k) if j != y]
        assert torch.allclose(change[:, others], torch.zeros_like(change[:, others]), atol=1e-5)
        torch.testing.assert_close(u_after - u_before, pi[:, y] * change[:, y], atol=1e-4, rtol=1e-4)
        before, u_before = after, u_after


def test_families_without_a_fixed_prior_are_refused():
    with pytest.raises(ValueError, match="cannot be M2's continuous latent"):
        M2("gmmvae", 6, 3, latent_dim=2, hidden=4)
    config = load_params(REPO_ROOT / "params.yaml", REPO_ROOT / "profiles/quick/params.yaml")
    config["semi_supervised"]["pixel_models"] = ["vamp"]
    with pytest.raises(ConfigError, match=r"semi_supervised\.pixel_models: the family 'vamp'"):
        semisup.check(config)


def test_labelled_sets_are_the_knn_sets_balanced_and_from_the_training_split(clustered_arrays,
                                                                             monkeypatch):
    y = clustered_arrays["y_train"]
    n_classes = int(clustered_arrays["n_classes"])
    seen = []
    original = knn.balanced_indices
    monkeypatch.setattr(knn, "balanced_indices", lambda *a: seen.append(original(*a)) or seen[-1])
    codes = {s: clustered_arrays[f"x_{s}"].astype(float) for s in ("train", "val", "test")}
    for seed in (0, 1):
        labelled, unlabelled = semisup.labelled_split(y, 50, seed)
        knn.knn_accuracy(codes["train"], y, codes["val"], clustered_arrays["y_val"], codes["test"],
                         clustered_arrays["y_test"], 50, [1], seed)
        np.testing.assert_array_equal(labelled, seen[-1])  # the k-NN evaluation's set
        assert np.bincount(y[labelled], minlength=n_classes).tolist() == [50 // n_classes] * n_classes
        assert not set(labelled) & set(unlabelled)
        assert sorted([*labelled, *unlabelled]) == list(range(len(y)))
        # no labelled image is a validation or test image
        train_rows = {r.tobytes() for r in clustered_arrays["x_train"][labelled]}
        for split in ("val", "test"):
            assert not train_rows & {r.tobytes() for r in clustered_arrays[f"x_{split}"]}
    assert not np.array_equal(semisup.labelled_split(y, 50, 0)[0], semisup.labelled_split(y, 50, 1)[0])


class _Stripes:
    """Two classes on two parallel lines y = +1 and y = -1 in the plane (Gaussian likelihood)."""

    likelihood = "gaussian"
    dim = 2

    def __init__(self, rng, n=400):
        self.x, self.y = self.draw(rng, n)
        self.val, self.y_val = self.draw(rng, 200)
        self.test, self.y_test = self.draw(rng, 200)

    @staticmethod
    def draw(rng, n):
        y = rng.integers(0, 2, n)
        x = np.stack([rng.uniform(-4, 4, n), np.where(y == 0, 1.0, -1.0)], 1) + rng.normal(0, 0.1, (n, 2))
        return torch.tensor(x, dtype=torch.float32), y

    def train(self, generator):
        return self.x


def test_m2_beats_its_classifier_trained_on_the_labelled_points_alone(tmp_path):
    """Labelled: two points of each class, class 0 at the left end, class 1 at the right end. The
    classifier alone splits left from right (about chance); M2 finds the two lines."""
    data = _Stripes(np.random.default_rng(0))
    x0 = data.x[:, 0].numpy()
    labelled = np.concatenate([np.flatnonzero((data.y == 0) & (x0 < -2))[:2],
                               np.flatnonzero((data.y == 1) & (x0 > 2))[:2]])
    values = {**TINY, "m2_dim": 1, "hidden": 32, "epochs": 15, "batch_size": 32}
    torch.manual_seed(0)
    model = M2("nvae", 2, 2, values["m2_dim"], values["hidden"], "gaussian")
    result = semisup.fit(model, data, data.y, labelled, data.y_val, data.y_test, values, 0, tmp_path)

    torch.manual_seed(0)
    alone = M2("nvae", 2, 2, values["m2_dim"], values["hidden"], "gaussian")
    opt = torch.optim.Adam(alone.classifier.parameters(), values["lr"])
    target = torch.from_numpy(data.y[labelled])
    for _ in range(300):
        loss = torch.nn.functional.cross_entropy(alone.classify(data.x[labelled]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    supervised = semisup.accuracy(alone, data.test, data.y_test)
    assert supervised < 0.8
    assert result["accuracy"] > 0.95 > supervised + 0.15


def _m1(processed_npz, tmp_path, train_cfg, model_cfg):
    from vaepriors.training.run import train_run

    train_cfg.update(max_epochs=2, warmup_epochs=1)
    train_run(processed_npz, tmp_path / "m1", "synthetic", "svae", 3, 0, train_cfg, model_cfg,
              progress=False)
    return tmp_path / "m1" / "model.pt"


def _without_seconds(record):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in record["history"]]


def test_m1_m2_resumes_after_an_interruption_with_the_same_result(processed_npz, tmp_path, train_cfg,
                                                                    model_cfg, monkeypatch):
    """An S-VAE M1 (its posterior drawn each epoch) under an S-VAE M2 (rejection sampler on the
    global RNG): stopped right after the epoch-2 checkpoint and run again, it ends bit for bit as
    the uninterrupted run."""
    m1 = _m1(processed_npz, tmp_path, train_cfg, model_cfg)
    args = (processed_npz,)
    kwargs = dict(dataset="synthetic", m2_family="svae", labels=20, seed=3, values=TINY, m1_path=m1)
    reference = semisup.run(*args, tmp_path / "reference.json", **kwargs)

    out = tmp_path / "run" / "s3.json"
    save = CheckpointDir.save

    def save_then_die(self, state, epoch):
        save(self, state, epoch)
        if epoch == 2:
            raise KeyboardInterrupt  # as a kill right after the checkpoint
    monkeypatch.setattr(CheckpointDir, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        semisup.run(*args, out, **kwargs)
    assert not out.exists() and CheckpointDir(out.parent / "s3-checkpoints").epochs() == [1, 2]
    monkeypatch.setattr(CheckpointDir, "save", save)
    resumed = semisup.run(*args, out, **kwargs)

    assert json.loads(out.read_text())["accuracy"] == resumed["accuracy"]
    assert _without_seconds(resumed) == _without_seconds(reference)
    assert resumed["epochs"] == TINY["epochs"] and resumed["m1_model"] == "svae" and resumed["m1_dim"] == 3
    assert resumed["likelihood"] == "gaussian" and resumed["n_labelled"] == 20
    assert not (out.parent / "s3-checkpoints").exists()
    assert 0 <= resumed["accuracy"] <= 1 and math.isfinite(resumed["history"][-1]["train_loss"])


def test_table_puts_the_nearest_published_number_beside_each_cell_and_the_paragraph_reads_it():
    from vaepriors.figures import semisup as S

    rows = []
    cells = (("nvae", "nvae", [0.90, 0.92]), ("svae", "nvae", [0.95, 0.97]), ("pixels", "svae", [0.5, 0.6]))
    for m1, m2, accs in cells:
        for seed, acc in enumerate(accs):
            rows.append({"dataset": "mnist", "labels": 100, "m1_model": m1, "m1_dim": 0 if m1 == "pixels" else 5,
                         "m2_model": m2, "m2_dim": 5, "seed": seed, "accuracy": acc, "epochs": 3, "max_epochs": 3,
                         "wall_seconds": 1.0, "cpu": "test"})
    refs = S.load_references([REPO_ROOT / "workflow/references/semisup"])
    cells = S.table(pd.DataFrame(rows), refs).set_index(["m1_model", "m2_model"])
    assert cells.loc[("nvae", "nvae"), "n"] == 2
    assert cells.loc[("nvae", "nvae"), "accuracy_mean"] == pytest.approx(0.91)
    assert cells.loc[("nvae", "nvae"), "accuracy_sd"] == pytest.approx(np.std([0.90, 0.92], ddof=1))
    # Davidson et al. at the same (M1 d, M2 d); Kingma et al. at their d = 50, named
    assert cells.loc[("nvae", "nvae"), "davidson2018"] == pytest.approx(0.90)
    assert cells.loc[("nvae", "nvae"), "davidson2018_at"] == ""
    assert cells.loc[("nvae", "nvae"), "kingma2014"] == pytest.approx(1 - 0.0333)
    assert cells.loc[("nvae", "nvae"), "kingma2014_at"] == "d 50/50"
    assert cells.loc[("svae", "nvae"), "davidson2018"] == pytest.approx(0.938)
    assert np.isnan(cells.loc[("pixels", "svae"), "kingma2014"])  # they published a Gaussian M2 only
    text = S.paragraph(cells.reset_index())
    assert "best M1 svae d 5 + M2 nvae d 5 at 96.00 ± 1.41 % (n = 2)" in text
    assert "M1 latent svae - nvae = +5.00 pp" in text
    assert "M1+M2 93.50 % against M2 alone 55.00 %" in text
    runs = pd.DataFrame(rows).assign(best_epoch=[3, 1, 3, 3, 2, 3])
    assert "4 of 6 runs had their best validation accuracy at their last epoch" in S.budget_sentence(runs)


def test_a_grid_narrowed_by_config_narrows_the_table_to_the_runs_it_plans(tmp_path):
    # models/latent_dims narrowed so that no M1 run of the section is on the grid: the table reads
    # the pixel runs alone (it once demanded the M1 runs the grid no longer trains and failed)
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-n", "--forceall", "-p",
                          "--configfile", "profiles/quick/params.yaml",
                          "--config", "models=[nvae,svae,ae]", "latent_dims=[2]"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    table = [ln for ln in out.stdout.splitlines() if "scripts/semisup.py table" in ln]
    assert len(table) == 1
    given = table[0].split(" --runs ")[1].split(" 2>")[0].split()
    assert given and all("/pixels+" in p for p in given)

    run = {"dataset": "digits", "labels": 100, "m1_model": None, "m1_dim": None, "m2_model": "nvae",
           "m2_dim": 5, "seed": 0, "accuracy": 0.5, "epochs": 3, "best_epoch": 2, "values": {"epochs": 3},
           "wall_seconds": 1.0, "meta": {"cpu": "test"}}
    path = tmp_path / "s0.json"
    path.write_text(json.dumps(run))
    args = [sys.executable, "scripts/semisup.py", "table", "--out-csv", str(tmp_path / "t.csv"),
            "--out-md", str(tmp_path / "t.md"), "--out-png", str(tmp_path / "t.png"), "--runs", str(path)]
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert pd.read_csv(tmp_path / "t.csv")["n"].tolist() == [1]
    # a run named but not there is named in the message
    done = subprocess.run([*args, str(tmp_path / "s1.json")], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "s1.json" in done.stderr
