"""The Snakemake DAG: dry runs on the default grid and the quick profile, lint, schema at start,
command-line overrides, and the checks the Snakefile makes before any job."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from vaepriors.config import REPO_ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--cores", "1"]


def snakemake(*args, cwd=REPO_ROOT):
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("extra", [[], ["--configfile", "profiles/quick/params.yaml"]])
def test_dry_run_plans_the_grid(extra):
    out = snakemake("-n", "--forceall", *extra)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rule train" in out.stdout and "rule aggregate" in out.stdout


def test_default_grid_size():
    out = snakemake("-n", "--forceall", "--quiet", "rules")
    assert out.returncode == 0, out.stderr[-3000:]
    # 2 datasets x 7 models x 5 dims x 10 seeds
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("train "))
    assert int(line.split()[1]) == 700


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n")
    out = snakemake("-n", "--configfile", str(bad))
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "train.lr" in text and "minimum of 0" in text and "rule train" not in text


def planned_jobs(out) -> dict[str, int]:
    """Job counts per rule from `snakemake -n --quiet rules`."""
    rows = (ln.split() for ln in out.stdout.splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


def test_config_overrides_of_lists_and_nested_numbers_are_typed():
    # Snakemake hands list and mapping values of --config over as strings: ['0', '1'], {'lr': '0.0005'}
    out = snakemake("-n", "--forceall", "--quiet", "rules",
                    "--config", "seeds=[0,1]", "train={lr: 0.0005, max_epochs: 3}", "latent_dims=[2]")
    assert out.returncode == 0, out.stderr[-3000:]
    assert planned_jobs(out)["train"] == 2 * 7 * 1 * 2  # datasets x models x dims x seeds


def test_config_override_is_passed_to_the_jobs_typed():
    out = snakemake("-n", "--forceall", "-p", "--config", "train={lr: 0.0005}", "seeds=[3]",
                    "--configfile", "profiles/quick/params.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    train = [ln for ln in out.stdout.splitlines() if "python scripts/train.py" in ln]
    # the run's values as JSON: the number typed (0.0005, not '0.0005')
    assert train and all('"lr":0.0005' in ln and "--seeds 3 " in ln for ln in train)


@pytest.mark.parametrize("override, key, what", [
    ("train={lr: .nan}", "train.lr", "nan is not a finite number"),
    ("evaluate={ae_scale_grid: [0.1, .inf]}", "evaluate.ae_scale_grid.1", "inf is not a finite number"),
    ("seeds=[0,a]", "seeds.1", "'a' is not of type 'integer'"),
])
def test_bad_config_override_is_refused_naming_the_key(override, key, what):
    out = snakemake("-n", "--config", override)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and f"{key}: {what}" in text and "rule train" not in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_refused_before_any_job():
    out = snakemake("-n", "--config", "train={device: cuda}")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "train.device" in text and "no CUDA device" in text
    assert "rule train" not in text


def test_snakemake_without_the_package_is_refused_before_any_job(tmp_path):
    # The Python running Snakemake, with the package's (editable) path taken out of sys.path.
    src = str(REPO_ROOT / "src")
    code = (f"import runpy, sys; sys.path[:] = [p for p in sys.path if p.rstrip('/') != {src!r}]; "
            "sys.argv = ['snakemake', '-n', '--cores', '1']; runpy.run_module('snakemake', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "vaepriors is not installed for" in text and ".venv/bin/snakemake" in text
    assert "rule train" not in text


@pytest.mark.slow
def test_jobs_run_the_python_that_runs_snakemake(tmp_path):
    """`.venv/bin/snakemake` without an activated environment: the jobs' `python` must be the
    venv's, not the first `python` on PATH (the system's lacks the package)."""
    for rel in ("Snakefile", "params.yaml", "workflow", "scripts", "profiles"):
        src = REPO_ROOT / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / rel)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no venv on PATH, as in a fresh shell
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "data/processed/digits.npz",
                          "--configfile", "profiles/quick/params.yaml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert (tmp_path / "data" / "processed" / "digits.npz").is_file()


def test_lint_passes():
    out = snakemake("--lint")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
