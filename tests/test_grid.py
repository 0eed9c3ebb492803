"""The run grid: datasets x models x latent dims x seeds, with optional per-model latent dims
(latent_dims_by_model), as Snakemake plans it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vaepriors.config import REPO_ROOT, load_params
from vaepriors.figures import targets as T

BUDGET = REPO_ROOT / "profiles" / "budget" / "params.yaml"


def test_per_model_dims_drop_products_and_keep_the_order():
    cfg = {"datasets": ["mnist"], "models": ["nvae", "ae"], "latent_dims": [2, 10, 40],
           "seeds": [0, 1], "latent_dims_by_model": {"ae": [10]}}
    assert T.grid(cfg) == [("mnist", "nvae", d, s) for d in (2, 10, 40) for s in (0, 1)] + [
        ("mnist", "ae", 10, 0), ("mnist", "ae", 10, 1)]
    assert T.run_files(cfg, "mnist", dims=[2], seeds=[0]) == ["results/models/mnist/nvae/d2/s0/model.pt"]
    # Snakemake's wildcards are strings.
    assert T.run_files(cfg, "mnist", models=["ae"], dims=["10"], seeds=[1]) == [
        "results/models/mnist/ae/d10/s1/model.pt"]
    assert T.density_dims(cfg) == [10] and T.has_latent_maps(cfg)
    cfg["latent_dims_by_model"] = {"nvae": [10], "ae": [10]}
    assert not T.has_latent_maps(cfg)
    del cfg["latent_dims_by_model"]
    assert len(T.grid(cfg)) == 12  # without the key: the full product


def test_per_model_dims_outside_latent_dims_are_refused_with_the_key():
    cfg = {"datasets": ["mnist"], "models": ["ae"], "latent_dims": [2], "seeds": [0],
           "latent_dims_by_model": {"ae": [3]}}
    with pytest.raises(ValueError, match=r"latent_dims_by_model.ae: \[3\] not in latent_dims"):
        T.grid(cfg)


def test_budget_profile_plans_nvae_svae_at_every_d_and_the_others_at_10(tmp_path):
    cfg = load_params(REPO_ROOT / "params.yaml", BUDGET)
    runs = T.grid(cfg)
    assert {(m, d) for _, m, d, _ in runs} == {(m, d) for m in ("nvae", "svae")
                                               for d in (2, 5, 10, 20, 40)} | {("gmmvae", 10), ("ae", 10)}
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--forceall",
                          "--configfile", str(BUDGET), "--quiet", "rules"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, flags=re.MULTILINE))
    assert int(counts["evaluate"]) == len(runs) == 2 * (2 * 5 + 2) * 3
    # every family trains its 3 seeds in one group job (gmmvae too, since it stacks)
    assert "train" not in counts and int(counts["train_seeds_0_2"]) == len(runs) // 3
