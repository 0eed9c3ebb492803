"""Publishing a finished run into docs/results/ (issue 16): copies, provenance, wall time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vaepriors.config import REPO_ROOT
from vaepriors.publish import publish, snakemake_wall_time

LOG = """Building DAG of jobs...
[Tue Dec  1 02:30:36 2026]
rule download:
[Tue Dec  1 02:31:06 2026]
Finished job 3.
[Tue Dec  1 03:30:36 2026]
Finished job 0.
"""


def fake_run(root):
    res = root / "results"
    (res / "figures" / "mnist").mkdir(parents=True)
    (res / "tables").mkdir()
    (res / "figures" / "loglik.png").write_bytes(b"png")
    (res / "figures" / "loglik.pdf").write_bytes(b"pdf")
    (res / "figures" / "mnist" / "samples.png").write_bytes(b"png2")
    (res / "tables" / "paper_comparison.md").write_text("| a |\n")
    (res / "tables" / "loglik.csv").write_text("x\n1\n")
    (res / "summary.md").write_text("![loglik](figures/loglik.png)\n\n"
                                    "*test log-likelihood; all* ([PDF](figures/loglik.pdf))\n")
    run = res / "models" / "mnist" / "nvae" / "d2" / "s0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"meta": {"cpu": "Test CPU 9000", "torch": "2.13.0",
                                                          "platform": "Linux-test"}}))
    (run / "history.csv").write_text("epoch,seconds\n1,1800\n2,1800\n")
    metrics = res / "metrics" / "mnist" / "nvae" / "d2"
    metrics.mkdir(parents=True)
    (metrics / "s0.json").write_text(json.dumps({"meta": {"elapsed_s": 360.0}}))
    (root / ".snakemake" / "log").mkdir(parents=True)
    (root / ".snakemake" / "log" / "2026-12-01T023036.snakemake.log").write_text(LOG)
    (root / ".snakemake" / "log" / "2026-12-01T023000.snakemake.log").write_text("Unlocked.\n")


def test_publish_copies_summary_tables_pngs_and_writes_provenance(tmp_path):
    fake_run(tmp_path)
    assert snakemake_wall_time(tmp_path) == (3600.0, 1)
    out = tmp_path / "docs" / "results" / "budget"
    (out / "stale.md").parent.mkdir(parents=True)
    (out / "stale.md").write_text("from an earlier publication")
    publish(tmp_path, out, "snakemake --cores 2 --configfile profiles/budget/params.yaml")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["RUN.md", "figures/loglik.png", "figures/mnist/samples.png", "summary.md",
                     "tables/loglik.csv", "tables/paper_comparison.md"]
    summary = (out / "summary.md").read_text()
    assert "[PDF]" not in summary and "![loglik](figures/loglik.png)" in summary
    run = (out / "RUN.md").read_text()
    assert "`snakemake --cores 2 --configfile profiles/budget/params.yaml`" in run
    assert "CPU: Test CPU 9000;" in run and "torch 2.13.0" in run
    assert "wall time: 1.00 h over 1 Snakemake invocation(s)" in run
    assert "training: 1 runs, 1.00 h" in run and "evaluation: 1 runs, 0.10 h" in run


def test_publish_refuses_an_unfinished_run_and_names_the_file(tmp_path):
    (tmp_path / "results").mkdir()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "publish_results.py"),
                           "--workdir", str(tmp_path), "--out", str(out), "--command", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{tmp_path / 'results' / 'summary.md'} does not exist" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("content", ["{not json", ""])
def test_an_unreadable_run_record_is_named(tmp_path, content):
    fake_run(tmp_path)
    bad = tmp_path / "results" / "models" / "mnist" / "nvae" / "d2" / "s0" / "config.json"
    bad.write_text(content)
    with pytest.raises(ValueError, match=f"{bad}: not a readable JSON file"):
        publish(tmp_path, tmp_path / "out", "x")
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.tmp").exists()
