"""Issue 25's studies: the circle toy's metrics and study script, the decoder-capacity sweep's table,
answer and script, end to end on a tiny version (a few seconds), and the rules' plan."""

import copy
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import MODEL_CFG, TINY_EVAL_CFG, TRAIN_CFG

from vaepriors import decoder_sweep
from vaepriors.config import REPO_ROOT
from vaepriors.data.prepare import prepare_dataset
from vaepriors.evaluation.circle import circular_correlation, circular_rank_correlation, code_angles
from vaepriors.evaluation.run import evaluate_run
from vaepriors.training.run import train_run


def test_circular_correlation():
    rng = np.random.default_rng(0)
    a = rng.vonmises(0.5, 1.0, 2000)
    assert circular_correlation(a, a + 1.3) == pytest.approx(1.0)
    assert circular_correlation(a, 2.0 - a) == pytest.approx(-1.0)
    assert abs(circular_correlation(a, rng.uniform(0, 2 * np.pi, 2000))) < 0.1
    noisy = circular_correlation(a, a + rng.normal(0, 0.3, 2000))
    assert 0.7 < noisy < 1.0
    # the angle of codes on a shifted, scaled circle, unevenly covered, is the angle itself
    codes = np.stack([3 + 2 * np.cos(a), -1 + 2 * np.sin(a)], -1)
    assert circular_correlation(code_angles(codes), a) == pytest.approx(1.0)


def test_circular_rank_correlation_sees_any_monotone_relation():
    rng = np.random.default_rng(1)
    a = np.mod(rng.vonmises(0.5, 1.0, 1000), 2 * np.pi)
    warped = a + 0.9 * np.sin(a) + 2.0  # monotone around the circle, rotated
    assert circular_rank_correlation(a, warped) == pytest.approx(1.0)
    assert circular_rank_correlation(a, -warped) == pytest.approx(1.0)  # mirrored
    assert circular_correlation(a, warped) < 0.99  # the correlation of sines is not invariant
    assert circular_rank_correlation(a, rng.uniform(0, 2 * np.pi, 1000)) < 0.02
    # a third of the points shuffled: clearly between
    b = warped.copy()
    b[:333] = rng.permutation(b[:333])
    assert 0.2 < circular_rank_correlation(a, b) < 0.8


def _rows(spread_small, spread_large, drop=0.0, overfit_large=0.5, limit_large=False):
    """Two families at two decoder sizes, three seeds; the N-VAE's test LL falls by ``drop`` from
    the small decoder to the large one, where its overfit and its stops are set."""
    rows = []
    for size, params, spread in (("s", 100, spread_small), ("l", 10000, spread_large)):
        for model, offset in (("nvae", 0.0), ("svae", spread)):
            large_nvae = size == "l" and model == "nvae"
            for seed, noise in enumerate((-0.1, 0.0, 0.1)):
                overfit = overfit_large if large_nvae else 0.5
                rows.append({"size": size, "dataset": "circle", "model": model, "latent_dim": 2,
                             "seed": seed, "decoder_parameters": params,
                             "loglik": 10 + offset + noise - (drop if large_nvae else 0.0),
                             "best_val_elbo": 9 + offset, "train_elbo": 9 + offset + overfit + noise,
                             "at_epoch_limit": limit_large and large_nvae or seed == 0})
    return rows


def test_sweep_table_gap_and_answer():
    frame = decoder_sweep.table(_rows(5.0, 0.5))
    assert set(frame["n"]) == {3}
    at_small = frame[frame["size"] == "s"].set_index("model")
    assert at_small.loc["svae", "gap_to_best"] == 0 and at_small.loc["nvae", "gap_to_best"] == pytest.approx(-5)
    assert "it shrinks" in decoder_sweep.paragraph(frame)
    assert "it grows" in decoder_sweep.paragraph(decoder_sweep.table(_rows(0.5, 5.0)))
    assert "stays within two SE" in decoder_sweep.paragraph(decoder_sweep.table(_rows(1.0, 1.05)))
    assert list(frame["at_epoch_limit"]) == [1, 1, 1, 1]
    assert frame["overfit"].to_numpy() == pytest.approx([0.5] * 4)


def test_sweep_answer_says_why_a_family_peaks_below_the_largest_decoder():
    """A decline beyond two SE is read as overfitting when the train − validation gap grows, as
    budget-limited when most runs stopped at the epoch limit; a decline within noise levels off."""
    def answer(**kw):
        return decoder_sweep.paragraph(decoder_sweep.table(_rows(1.0, 1.0, **kw)))

    assert "nvae peaks" not in answer(drop=-1.0) and "nvae levels off" not in answer(drop=-1.0)
    assert "nvae levels off from s (l within two SE)" in answer(drop=0.05)
    assert ("nvae peaks at s, 3.00 nats above l (overfitting: the train − validation ELBO gap grows "
            "from 0.50 to 4.00 nats)") in answer(drop=3.0, overfit_large=4.0)
    assert "not converged within the budget: 3 of 3 runs at l" in answer(drop=3.0, overfit_large=4.0,
                                                                            limit_large=True)
    assert "neither the epoch limit nor overfitting" in answer(drop=3.0, overfit_large=0.6)


def test_tiny_circle_study_and_sweep_end_to_end(tmp_path):
    """Prepare a small circle set, train two families for two epochs with a Gaussian likelihood
    (one at two decoder sizes), evaluate, and run both study scripts on the results."""
    data = tmp_path / "circle.npz"
    prepare_dataset("circle", tmp_path / "raw", data, n_validation=300, max_train=500)
    train = {**TRAIN_CFG, "max_epochs": 2, "warmup_epochs": 1}
    model = {**copy.deepcopy(MODEL_CFG), "likelihood": "gaussian"}
    ev = {**TINY_EVAL_CFG, "importance_samples": 10, "knn_labels": [50]}
    runs = []
    for family, dim, size, hidden in (("nvae", 2, "s", [8]), ("svae", 1, "s", [8]), ("nvae", 2, "l", [64, 64])):
        out = tmp_path / size / family
        train_run(data, out, "circle", family, dim, 0, train, {**model, "decoder_hidden": hidden}, progress=False)
        metrics = evaluate_run(out / "model.pt", data, 0, ev, progress=False)
        metrics.update(dataset="circle", model=family, latent_dim=dim, seed=0)
        (out / "metrics.json").write_text(pd.Series(metrics).to_json())
        runs.append((size, out))
    script = lambda name, *args: subprocess.run([sys.executable, f"scripts/{name}", *map(str, args)],  # noqa: E731
                                                cwd=REPO_ROOT, capture_output=True, text=True)
    small = [r for r in runs if r[0] == "s"]
    out = script("circle_study.py", "--data", data, "--models", *[d / "model.pt" for _, d in small],
                 "--metrics", *[d / "metrics.json" for _, d in small], "--out-csv", tmp_path / "c.csv",
                 "--out-md", tmp_path / "c.md", "--out-png", tmp_path / "c.png")
    assert out.returncode == 0, out.stderr[-3000:]
    table = pd.read_csv(tmp_path / "c.csv")
    assert list(table["model"]) == ["nvae", "svae"] and (table["angle_correlation"] <= 1).all()
    assert (table["gap"] > 0).all()  # two epochs are far from the true density
    assert (tmp_path / "c.pdf").is_file()
    out = script("decoder_sweep.py", "--metrics", *[d / "metrics.json" for _, d in runs],
                 "--models", *[d / "model.pt" for _, d in runs], "--sizes", *[s for s, _ in runs],
                 "--budget", "two epochs", "--out-csv", tmp_path / "s.csv", "--out-md", tmp_path / "s.md",
                 "--out-png", tmp_path / "s.png")
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = pd.read_csv(tmp_path / "s.csv")
    params = sweep.set_index(["model", "size"])["decoder_parameters"]
    assert params["nvae", "s"] == 2 * 8 + 8 + 8 * 100 + 100
    assert params["nvae", "l"] == 2 * 64 + 64 + 64 * 64 + 64 + 64 * 100 + 100
    assert (tmp_path / "s.md").read_text().startswith("two epochs")


def test_rules_plan_the_studies_only_where_configured():
    snake = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", "--cores", "1"]
    out = subprocess.run([*snake, "capacity", "--configfile", "profiles/circle/params.yaml",
                          "profiles/circle-sweep/params.yaml"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in out.stdout.splitlines()
              if len(ln.split()) == 2 and ln.split()[1].isdigit()}
    # the sweep's profile trains 3 seeds per job: 5 families, and 4 families x 2 d x 4 sizes
    assert counts["train_seeds_0_2"] == 5 and counts["circle_study"] == 1
    assert counts["train_sweep_seeds_0_2"] == 4 * 2 * 4 and "train_sweep" not in counts
    assert counts["evaluate_sweep"] == 4 * 2 * 4 * 3 and counts["decoder_sweep_table"] == 1
    out = subprocess.run([*snake, "--configfile", "profiles/quick/params.yaml"], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "sweep" not in out.stdout and "circle" not in out.stdout


def test_the_default_target_and_the_summary_carry_the_studies_where_configured(tmp_path):
    from vaepriors.figures.summary import build_summary

    snake = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", "--cores", "1"]
    def plan(*files):
        out = subprocess.run([*snake, "--configfile", *files], cwd=REPO_ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        return {ln.split()[0]: int(ln.split()[1]) for ln in out.stdout.splitlines()
                if len(ln.split()) == 2 and ln.split()[1].isdigit()}

    counts = plan("profiles/circle/params.yaml")
    assert counts["circle_study"] == 1 and counts["summary"] == 1 and "train_sweep" not in counts
    counts = plan("profiles/circle/params.yaml", "profiles/circle-sweep/params.yaml")
    assert counts["circle_study"] == 1 and counts["decoder_sweep_table"] == 1 and counts["summary"] == 1

    circle = tmp_path / "tables" / "circle.md"
    circle.parent.mkdir()
    circle.write_text("| family |\n|---|\n| svae |\n\nShortfall from the true log-density: svae 0.75.\n")
    text = build_summary(tmp_path / "summary.md", figures=[], tables_md=[circle], paragraphs={})
    section = text.split("## 14. Does a powerful decoder make the prior irrelevant?")[1]
    assert "Shortfall from the true log-density: svae 0.75." in section


def test_the_image_studies_take_continuous_points_as_they_are(tmp_path):
    # the circle profile's default target runs the sample-quality classifier and the AE density
    # study: on points that are not grey levels they once divided by 255 and drew Bernoulli
    # samples of negative numbers (RuntimeError: p_in >= 0 && p_in <= 1)
    import torch

    from vaepriors.data.prepare import load_processed
    from vaepriors.figures import density, frechet
    from vaepriors.training.run import train_run

    data = tmp_path / "circle.npz"
    prepare_dataset("circle", tmp_path / "raw", data, n_validation=300, max_train=500)
    arrays = load_processed(data)
    assert (np.asarray(arrays["x_train"]) < 0).any()
    clf, info = frechet.train_classifier(arrays, [16], epochs=2)
    assert info["test_accuracy"] > 1 / int(arrays["n_classes"])  # the mixture components are separable
    reference = frechet.FeatureReference(clf, arrays, n=100)
    assert np.isfinite(reference.floor)

    train = {**TRAIN_CFG, "max_epochs": 1, "warmup_epochs": 1}
    model_cfg = {**copy.deepcopy(MODEL_CFG), "likelihood": "gaussian"}
    train_run(data, tmp_path / "ae", "circle", "ae", 2, 0, train, model_cfg, progress=False)
    from vaepriors.models import load_model

    model = load_model(tmp_path / "ae" / "model.pt")
    z = torch.zeros(3, model.code_dim)
    assert np.allclose(frechet.decode_means(model, z), model.decode(z).detach().double().numpy())
    codes = density.ae_codes(model, arrays, seed=0)
    assert np.isfinite(codes["train"]).all() and len(codes["train"]) == len(arrays["x_train"])
