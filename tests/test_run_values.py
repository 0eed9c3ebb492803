"""A run's identity is the values it uses (issue 26, part 2): what the rules hand a per-run script,
validated once, and what decides whether Snakemake redoes a finished run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vaepriors import families
from vaepriors.config import REPO_ROOT, ConfigError, load_params, load_schema, parse_values, run_values, values_json
from vaepriors.models.base import SHARED_SETTINGS


@pytest.fixture(scope="module")
def params():
    return load_params()


def test_training_values_are_the_keys_the_family_reads(params):
    for name in families.names():
        values = run_values(params, "train", name)
        assert set(values) == {"train", "model"}
        assert set(values["model"]) == {*SHARED_SETTINGS, *families.get(name).settings}
        assert "threads" not in values["train"] and "seeds_per_job" not in values["train"]
    assert "vmf_gradient" in run_values(params, "train", "svae")["model"]
    assert "vmf_gradient" not in run_values(params, "train", "nvae")["model"]
    assert "ae_scale_grid" in run_values(params, "evaluate", "ae")["evaluate"]
    assert "ae_scale_grid" not in run_values(params, "evaluate", "nvae")["evaluate"]


@pytest.mark.parametrize("section,key,value,changes", [
    ("model", "vamp_components", 7, {"vamp"}),
    ("model", "vmf_gradient", "accepted", {"svae"}),
    ("model", "init", "flip", set(families.names())),
    ("train", "lr", 0.002, set(families.names())),
    ("train", "threads", 2, set()),
    ("train", "seeds_per_job", 5, set()),
])
def test_a_value_changes_exactly_the_runs_that_use_it(params, section, key, value, changes):
    if value == "flip":
        value = "torch" if params[section][key] == "glorot" else "glorot"
    changed = {**params, section: {**params[section], key: value}}
    moved = {name for name in families.names()
             if run_values(changed, "train", name) != run_values(params, "train", name)}
    assert moved == changes


def test_values_round_trip_through_json(params):
    for name in families.names():
        for stage in ("train", "evaluate"):
            values = run_values(params, stage, name)
            assert parse_values(values_json(values), stage, name) == values


@pytest.mark.parametrize("edit,words", [
    (lambda v: v["model"].pop("init"), ["model", "init", "required"]),
    (lambda v: v["model"].update(vamp_components=3), ["model", "vamp_components"]),
    (lambda v: v["train"].update(lr="fast"), ["train.lr", "'fast'"]),
    (lambda v: v["model"].update(vmf_gradient="naive"), ["model.vmf_gradient", "naive"]),
    (lambda v: v.pop("model"), ["sections", "model"]),
])
def test_bad_values_are_refused_naming_the_key(params, edit, words):
    values = run_values(params, "train", "svae")
    edit(values)
    with pytest.raises(ConfigError) as info:
        parse_values(json.dumps(values), "train", "svae")
    assert all(w in str(info.value) for w in words), str(info.value)
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_values("{train: 1}", "train", "svae")


# --- end to end: what Snakemake redoes ------------------------------------------------------------

def _snakemake(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=root,
                          capture_output=True, text=True, timeout=900)


def _planned(root: Path, config: list[str], *args: str) -> set[str]:
    out = _snakemake(root, "-n", "--quiet", "rules", "--configfile", "profile.yaml", *args,
                     *(["--config", *config] if config else []), "--", TARGET)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = (line.split() for line in out.stdout.splitlines())
    return {row[0] for row in rows if len(row) == 2 and row[1].isdigit() and row[0] != "total"}


TARGET = "results/metrics/digits/svae/d2/s0.json"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A copy of the workflow with one S-VAE run of the quick profile trained and evaluated."""
    root = tmp_path_factory.mktemp("identity")
    for rel in ("Snakefile", "params.yaml", "workflow", "scripts", "src", "profiles"):
        src = REPO_ROOT / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / rel)
    profile = yaml.safe_load((REPO_ROOT / "profiles/quick/params.yaml").read_text())
    profile.update(models=["svae"], latent_dims=[2], seeds=[0])
    # the grid alone: no optional study (ablation, semi-supervised, ...) rides along
    required = load_schema()["required"]
    profile = {k: v for k, v in profile.items() if k in required}
    profile["train"].update(max_epochs=2, warmup_epochs=1)
    profile["evaluate"].update(importance_samples=5, knn_labels=[100])
    (root / "profile.yaml").write_text(yaml.safe_dump(profile))
    out = _snakemake(root, "--configfile", "profile.yaml", "--", TARGET)
    assert out.returncode == 0, out.stderr[-4000:]
    return root


@pytest.mark.parametrize("config,redone", [
    # keys the S-VAE run does not use, or that only say how it runs (a group of seeds included)
    (["model={vamp_components: 7, gmm_pretrain_epochs: 1}", "train={threads: 2, seeds_per_job: 3}",
      "evaluate={ae_scale_grid: [0.5]}"], set()),
    # values it uses
    (["model={vmf_gradient: accepted}"], {"train", "evaluate"}),
    (["evaluate={importance_samples: 6}"], {"evaluate"}),
    # where the data comes from and goes is not what it holds; a split value is
    (["data={mirrors: [src]}"], set()),
    (["data={split_seed: 3}"], {"prepare", "train", "evaluate"}),
])
def test_a_finished_run_is_redone_only_when_a_value_it_uses_changes(finished_run, config, redone):
    assert _planned(finished_run, config) - {"all"} == redone


def test_editing_the_scripts_redoes_nothing(finished_run):
    assert _planned(finished_run, []) == set()
    for script in ("download.py", "prepare.py", "train.py", "evaluate.py"):
        path = finished_run / "scripts" / script
        path.write_text(path.read_text() + "\n# a refactor\n")
    assert _planned(finished_run, []) == set()


def test_convergence_check_reuses_the_finished_runs(finished_run):
    """convergence_samples evaluates the finished run again at that K, redoing no training or
    evaluation, and tabulates both estimates."""
    assert _planned(finished_run, ["convergence_samples=12"]) == set()  # TARGET needs no check
    out = _snakemake(finished_run, "--configfile", "profile.yaml", "--config", "convergence_samples=12",
                     "convergence_points=7", "--", "results/tables/loglik_convergence.md")
    assert out.returncode == 0, out.stderr[-3000:]
    ran = set(re.findall(r"rule (\w+):", out.stdout + out.stderr))
    assert ran == {"loglik_check", "loglik_convergence"}, ran
    text = (finished_run / "results/tables/loglik_convergence.md").read_text()
    assert "K = 5 and at K = 12" in text and "| digits | svae | 2 | 1 | 7 |" in text
    check = json.loads((finished_run / TARGET.replace("metrics", "convergence")).read_text())
    assert check["loglik"]["n_test"] == 7 and check["loglik_base"]["importance_samples"] == 5
    assert check["gain"]["mean"] == pytest.approx(check["loglik"]["mean"] - check["loglik_base"]["mean"])


def test_one_run_on_demand_as_the_readme_says(finished_run):
    """Deleting a finished run's folder redoes nothing (its metrics are there); --forcerun on its
    model, the README's command, retrains it and re-evaluates it, and nothing else."""
    model = TARGET.replace("metrics", "models").replace(".json", "/model.pt")
    assert f"--forcerun {'results/models/<dataset>/<family>/d<d>/s<seed>/model.pt'}" in (
        REPO_ROOT / "README.md").read_text()
    metrics = (finished_run / TARGET).read_text()
    shutil.rmtree(finished_run / Path(model).parent)
    assert _planned(finished_run, []) == set()
    assert _planned(finished_run, [], "--forcerun", model) == {"train", "evaluate"}
    out = _snakemake(finished_run, "--configfile", "profile.yaml", "--forcerun", model, "--", TARGET)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (finished_run / model).is_file()
    same = ("loglik", "elbo")  # the retrained run gives the same numbers (timings aside)
    old, new = json.loads(metrics), json.loads((finished_run / TARGET).read_text())
    assert {k: old[k] for k in same if k in old} == {k: new[k] for k in same if k in new}


def test_data_rebuilt_with_the_same_bytes_redoes_nothing(finished_run):
    """Content, not modification time, decides: the raw folder downloaded again and the prepared
    file rebuilt (byte-identical) retrain nothing. (Within one call Snakemake plans what reads a
    file it will rebuild before it knows the bytes: the README says to rebuild data on its own.)
    Last in the module: it rewrites the data."""
    data = finished_run / "data/processed/digits.npz"
    before = data.read_bytes()
    out = _snakemake(finished_run, "--configfile", "profile.yaml", "--forcerun",
                     "data/raw/digits", "--", str(data.relative_to(finished_run)))
    assert out.returncode == 0, out.stderr[-3000:]
    ran = set(re.findall(r"rule (\w+):", out.stdout + out.stderr))
    assert ran == {"download", "prepare"}, ran
    assert data.read_bytes() == before
    assert _planned(finished_run, []) == set()
