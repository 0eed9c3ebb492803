"""The spherical posteriors' stability and speed study (rule spherical_study): its table, its
counting of non-finite rows, the summary paragraph and the script's files."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import torch

from vaepriors.config import REPO_ROOT
from vaepriors.figures import spherical


def test_study_covers_the_grid_and_finds_no_non_finite_step():
    table = spherical.study(dims=(3, 513), kappas=(0.01, 1e5), rows=8, repeats=2)
    assert len(table) == 2 * 2 * len(spherical.DISTRIBUTIONS)
    assert set(table["distribution"]) == set(spherical.DISTRIBUTIONS)
    assert (table["step_ms"] > 0).all() and (table["non_finite"] == 0).all()
    ratios = spherical.step_ratios(table)
    assert ratios.iloc[0] == 1.0 and (ratios > 0).all()
    assert "no non-finite" in spherical.paragraph(table)


def test_a_step_with_nan_rows_is_counted(monkeypatch):
    """Half the rows of a distribution give NaN draws: the study reports 50% for it, and says so."""
    def broken(loc, kappa):
        q, prior = spherical._gaussian(loc, kappa)
        bad = torch.zeros_like(loc)
        bad[: len(loc) // 2] = float("nan")
        rsample = q.rsample
        q.rsample = lambda *a: rsample(*a) + bad
        return q, prior

    monkeypatch.setattr(spherical, "DISTRIBUTIONS", {**spherical.DISTRIBUTIONS, "broken": broken})
    table = spherical.study(dims=(3,), kappas=(1.0,), rows=8, repeats=2)
    got = table.set_index("distribution")["non_finite"]
    assert got["broken"] == 0.5 and got.drop("broken").eq(0).all()
    assert "broken at m = 3, κ = 1 (50.0%)" in spherical.paragraph(table)
    assert "| 50.0% |" in spherical.markdown(table)


def test_script_writes_table_markdown_and_figure(tmp_path):
    out = tmp_path / "fig" / "spherical_stability.png"
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts/figures/spherical_study.py"),
                           "--out", str(out), "--out-csv", str(csv), "--out-md", str(md),
                           "--repeats", "1", "--rows", "4"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists() and out.with_suffix(".pdf").exists()
    table = pd.read_csv(csv)
    assert len(table) == len(spherical.DIMS) * len(spherical.KAPPAS) * len(spherical.DISTRIBUTIONS)
    assert table["cpu"].nunique() == 1 and md.read_text().startswith("CPU: ")
