"""The Snakemake DAG: dry runs on the default grid and the quick profile, lint, schema at start."""

import subprocess
import sys

import pytest

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
    # 2 datasets x 4 models x 5 dims x 10 seeds
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("train "))
    assert int(line.split()[1]) == 400


def test_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n")
    out = snakemake("-n", "--configfile", str(bad))
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "['train']['lr']" in text and "minimum of 0" in text and "rule train" not in text


def test_lint_passes():
    out = snakemake("--lint")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
