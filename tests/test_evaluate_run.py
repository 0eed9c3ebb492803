"""One run from training to its metrics file: every section present, and the numbers consistent
with each other (the importance-sampled bound sits above the ELBO, the AE is scored as a bound)."""

import json
import subprocess
import sys

import pytest

from vaepriors.config import REPO_ROOT, load_params, to_flags
from vaepriors.training.run import train_run

EVAL_CFG = {
    "importance_samples": 64,
    "chunk_elements": 200_000,
    "knn_labels": [50, 100],
    "knn_k": [1, 3, 5],
    "kmeans_n_init": 2,
    "ae_scale_grid": [0.05, 0.2],
    "threads": 1,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, processed_npz):
    cfg = load_params(REPO_ROOT / "params.yaml", REPO_ROOT / "profiles" / "quick" / "params.yaml")
    train_cfg = {**cfg["train"], "max_epochs": 6, "warmup_epochs": 2, "device": "cpu"}
    model_cfg = {**cfg["model"], "gmm_pretrain_epochs": 2}
    runs = {}
    for model in ("nvae", "svae", "gmmvae", "ae"):
        out = tmp_path_factory.mktemp(model)
        train_run(processed_npz, out, "synthetic", model, 2, 0, train_cfg, model_cfg, progress=False)
        runs[model] = out
    return runs


@pytest.mark.parametrize("model", ["nvae", "svae", "gmmvae", "ae"])
def test_evaluate_script_writes_a_complete_metrics_file(trained, processed_npz, tmp_path, model):
    out = tmp_path / "metrics" / "s0.json"
    cmd = [sys.executable, str(REPO_ROOT / "scripts" / "evaluate.py"), "--data", str(processed_npz),
           "--model", str(trained[model] / "model.pt"), "--out", str(out), "--seed", "0",
           "--no-progress", *to_flags(EVAL_CFG).split()]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert (metrics["dataset"], metrics["model"], metrics["latent_dim"], metrics["seed"]) == (
        "synthetic", model, 2, 0)
    assert metrics["code_dim"] == (3 if model == "svae" else 2)
    ll = metrics["loglik"]
    assert ll["importance_samples"] == 64 and ll["n_test"] == 200
    assert ll["binarize_seed"] == 1 and ll["split_seed"] == 0
    # log p(x) >= E[IS estimate] >= ELBO: with K = 64 the estimate must not fall below the ELBO
    # by more than noise (the VAEs; the AE's "ELBO" is only its reconstruction term).
    if model != "ae":
        assert ll["mean"] >= metrics["elbo"]["elbo"] - 0.5
    else:
        assert "lower bound" in metrics["ae_proposal"]["note"]
        assert metrics["ae_proposal"]["scale"] in EVAL_CFG["ae_scale_grid"]
    assert 0 <= metrics["active_units"] <= metrics["code_dim"]
    clustering = metrics["clustering"]
    assert clustering["k"] == 5 and 0.2 < clustering["acc"] <= 1
    assert set(metrics["knn"]) == {"50", "100"}
    assert all(0 <= r["test_acc"] <= 1 for r in metrics["knn"].values())
    assert metrics["meta"]["torch"] and metrics["meta"]["seed"] == 0
    # the values this run used (vaepriors.config.run_values: the AE's keys only for the AE)
    used = {k: v for k, v in EVAL_CFG.items() if not k.startswith("ae_") or model == "ae"}
    assert metrics["evaluate"] == used


def test_same_seed_same_metrics(trained, processed_npz, tmp_path):
    from vaepriors.evaluation.run import evaluate_run

    a = evaluate_run(trained["svae"] / "model.pt", processed_npz, 3, EVAL_CFG, progress=False)
    b = evaluate_run(trained["svae"] / "model.pt", processed_npz, 3, EVAL_CFG, progress=False)
    for key in ("loglik", "elbo", "clustering", "knn"):
        assert a[key] == b[key]
