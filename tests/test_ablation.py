"""One-factor-at-a-time ablations (vaepriors.ablation): which runs a variant adds, its data, the
table of what it moves, and the DAG the quick profile plans with variants."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from vaepriors import ablation
from vaepriors.config import REPO_ROOT, ConfigError, deep_merge, load_params

QUICK = REPO_ROOT / "profiles" / "quick" / "params.yaml"
VARIANTS = {"glorot": {"model": {"init": "glorot"}},
            "accepted": {"model": {"vmf_gradient": "accepted"}},
            "split": {"data": {"n_validation": 250}}}


@pytest.fixture
def cfg():
    base = load_params(REPO_ROOT / "params.yaml", QUICK)
    return deep_merge(base, {"models": ["nvae", "svae"], "latent_dims": [2], "seeds": [0, 1],
                             "ablation": {"variants": VARIANTS}})


def test_a_variant_runs_the_families_whose_values_it_changes(cfg):
    runs = ablation.runs(cfg)
    by_variant = {v: {(m, s) for w, _, m, _, s in runs if w == v} for v in VARIANTS}
    assert by_variant["glorot"] == {(m, s) for m in ("nvae", "svae") for s in (0, 1)}
    assert by_variant["accepted"] == {("svae", 0), ("svae", 1)}  # a vMF setting: not the N-VAE
    assert by_variant["split"] == by_variant["glorot"]  # the data change every family's runs
    assert ablation.data_path(cfg, "split", "digits").endswith("ablation/split/digits.npz")
    assert ablation.data_path(cfg, "glorot", "digits") == f"{cfg['data']['processed_dir']}/digits.npz"
    assert ablation.variant_config(cfg, "glorot")["model"]["init"] == "glorot"


@pytest.mark.parametrize("variants,words", [
    ({"noop": {"model": {"init": "torch"}}}, ["noop", "changes no value"]),
    ({"bad": {"model": {"init": "xavier"}}}, ["model.init", "xavier"]),
    ({"baseline": {"model": {"init": "glorot"}}}, ["'baseline'", "not a usable variant name"]),
    ({"a/b": {"model": {"init": "glorot"}}}, ["'a/b'"]),
])
def test_bad_variants_are_refused_naming_them(cfg, variants, words):
    cfg["ablation"]["variants"] = variants
    with pytest.raises(ConfigError) as info:
        ablation.check(cfg)
    assert all(w in str(info.value) for w in words), str(info.value)


def _row(variant, seed, loglik, model="svae"):
    return {"variant": variant, "dataset": "mnist", "model": model, "latent_dim": 40, "seed": seed,
            "loglik": loglik, "elbo": loglik - 5, "rec": 70.0, "kl": 25.0, "best_epoch": 90 + seed,
            "epochs": 100}


def test_table_gives_each_variants_change_with_its_standard_error():
    rows = [_row("baseline", 0, -100.0), _row("baseline", 1, -102.0),
            _row("glorot", 0, -98.0), _row("glorot", 1, -99.0), _row("glorot", 2, -97.0)]
    table = ablation.table(rows)
    base, glorot = table.iloc[0], table.iloc[1]
    assert base.variant == "baseline" and base.n == 2 and base.loglik == -101.0
    assert glorot.n == 3 and glorot.delta_loglik == pytest.approx(-98.0 + 101.0)
    se = math.sqrt(2.0 / 2 + 1.0 / 3)  # sample variances 2 and 1
    assert glorot.delta_se == pytest.approx(se)
    assert glorot.paired_n == 2 and glorot.paired_delta == pytest.approx(2.5)
    text = ablation.markdown(table, {"glorot": "model.init = glorot"})
    assert "| mnist | svae | 40 | glorot | model.init = glorot | 3 | -98.00 ± 1.00 | +3.00 (1.15) |" in text


def test_quick_profile_plans_the_variants(tmp_path):
    config = tmp_path / "ablation.yaml"
    config.write_text("models: [nvae, svae]\nlatent_dims: [2]\nseeds: [0]\nablation:\n  variants:\n"
                      "    glorot: {model: {init: glorot}}\n    accepted: {model: {vmf_gradient: accepted}}\n")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules",
                          "--cores", "1", "--configfile", str(QUICK), str(config)],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    counts = {r[0]: int(r[1]) for r in (ln.split() for ln in out.stdout.splitlines())
              if len(r) == 2 and r[1].isdigit()}
    assert counts["train_variant"] == 3 and counts["evaluate_variant"] == 3  # 2 glorot + 1 accepted
    assert counts["ablation_table"] == 1 and "prepare_variant" not in counts


def test_an_ablation_runs_end_to_end(tmp_path):
    """A tiny ablation through Snakemake: the baseline and one variant trained and evaluated, the
    table with the variant's change, and the curves figure."""
    import shutil

    import yaml

    for rel in ("Snakefile", "params.yaml", "workflow", "scripts", "src", "profiles"):
        src = REPO_ROOT / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / rel)
    profile = yaml.safe_load(QUICK.read_text())
    profile.update(models=["svae"], latent_dims=[3], seeds=[0, 1],
                   ablation={"variants": {"accepted": {"model": {"vmf_gradient": "accepted"}}}})
    profile["train"].update(max_epochs=2, warmup_epochs=1)
    profile["evaluate"].update(importance_samples=5, knn_labels=[100])
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "profile.yaml",
                          "--", "results/tables/ablation.md"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    table = (tmp_path / "results/tables/ablation.md").read_text()
    assert "| digits | svae | 3 | baseline | the configuration | 2 |" in table
    assert "| digits | svae | 3 | accepted | model.vmf_gradient = accepted | 2 |" in table
    assert (tmp_path / "results/figures/ablation_curves.png").stat().st_size > 0
    assert (tmp_path / "results/ablation/accepted/metrics/digits/svae/d3/s1.json").exists()
