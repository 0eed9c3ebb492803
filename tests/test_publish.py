"""Publishing a finished run into docs/results/ (issue 16): copies, provenance, wall time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vaepriors.config import REPO_ROOT
from vaepriors.publish import publish, snakemake_times

LOG = """Building DAG of jobs...
Select jobs to execute...
Execute 2 jobs...

[Tue Dec  1 02:30:36 2026]
localrule train_seeds_0_1:
    input: scripts/train.py, data/processed/mnist.npz
    jobid: 5
    resources: tmpdir=/tmp

[Tue Dec  1 02:30:36 2026]
rule evaluate:
    input: results/models/mnist/nvae/d2/s0/model.pt
    jobid: 7

[Tue Dec  1 02:31:06 2026]
Finished jobid: 7 (Rule: evaluate)
1 of 3 steps (33%) done
[Tue Dec  1 03:00:36 2026]
Finished jobid: 5 (Rule: train_seeds_0_1)
2 of 3 steps (67%) done

[Tue Dec  1 03:00:36 2026]
localrule summary:
    jobid: 0

[Tue Dec  1 03:30:36 2026]
Finished jobid: 0 (Rule: summary)
3 of 3 steps (100%) done
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
                                                          "platform": "Linux-test",
                                                          "git_commit": "abc123"}}))
    (run / "history.csv").write_text("epoch,seconds\n1,1800\n2,1800\n")
    metrics = res / "metrics" / "mnist" / "nvae" / "d2"
    metrics.mkdir(parents=True)
    (metrics / "s0.json").write_text(json.dumps({"meta": {"elapsed_s": 360.0}}))
    (root / ".snakemake" / "log").mkdir(parents=True)
    (root / ".snakemake" / "log" / "2026-12-01T023036.snakemake.log").write_text(LOG)
    (root / ".snakemake" / "log" / "2026-12-01T023000.snakemake.log").write_text("Unlocked.\n")


def test_publish_copies_summary_tables_pngs_and_writes_provenance(tmp_path):
    fake_run(tmp_path)
    times = snakemake_times(tmp_path)
    assert (times["wall"], times["invocations"]) == (3600.0, 1)
    assert times["rules"] == {"evaluate": (1, 30.0), "train_seeds_0_1": (1, 1800.0),
                              "summary": (1, 1800.0)}
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
    assert "training ran at `abc123`" in run
    assert "wall time: 1.00 h over 1 Snakemake invocation(s)" in run
    assert "training: 1 runs, 1.00 h" in run and "1 runs evaluated" in run
    assert "| train_seeds_0_1 | 1 | 0.50 |" in run and "| evaluate | 1 | 0.01 |" in run
    assert "| mnist/nvae/d2 | 1 | 2–2 | 1.00–1.00 |" in run  # per cell, from history.csv
    assert "Carried cells" not in run


def _earlier_run(root, cell=("mnist", "svae", "d10")):
    """A fake run whose one trained cell is ``cell`` (the one a later run carries)."""
    fake_run(root)
    for kind in ("models", "metrics"):
        old = root / "results" / kind / "mnist" / "nvae" / "d2"
        new = root / "results" / kind / cell[0] / cell[1] / cell[2]
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)
    return root


CARRIED = {"source": "docs/results/paper/tables",
           "cells": [{"dataset": "mnist", "model": "svae", "latent_dim": 10, "n": 5}]}


def test_carried_cells_keep_the_earlier_publications_record(tmp_path):
    """Cells carried from an earlier publication (aggregate --carry) are named in RUN.md, with
    that publication's own RUN.md kept beneath as their provenance."""
    out = tmp_path / "docs" / "results" / "paper"
    publish(_earlier_run(tmp_path / "earlier"), out, "first session")
    fake_run(tmp_path)
    (tmp_path / "results" / "tables" / "carried.json").write_text(json.dumps(CARRIED))
    publish(tmp_path, out, "second session")
    run = (out / "RUN.md").read_text()
    assert "`second session`" in run and "## Carried cells" in run
    assert "mnist svae d = 10 (n = 5)" in run
    assert "## # How these results were made" not in run and "## How these results were made" in run
    assert "`first session`" in run.split("## Carried cells")[1]
    assert "| mnist/svae/d10 | 1 |" in run.split("## Carried cells")[1]


def test_republishing_a_run_replaces_its_own_record_and_keeps_the_carried_one(tmp_path):
    """The same run published again (or a part of it published first) is not its own carried
    provenance: RUN.md keeps one record of this run and, beneath, the publication it carries."""
    out = tmp_path / "docs" / "results" / "paper"
    publish(_earlier_run(tmp_path / "earlier"), out, "first session")
    fake_run(tmp_path)
    (tmp_path / "results" / "tables" / "carried.json").write_text(json.dumps(CARRIED))
    for command in ("part of the second session", "second session", "second session again"):
        publish(tmp_path, out, command)
    run = (out / "RUN.md").read_text()
    assert "`second session again`" in run
    assert "`second session`" not in run and "`part of the second session`" not in run
    assert run.count("## Carried cells") == 1 and run.count("`first session`") == 1
    assert "### How these results were made" not in run


def test_a_duplicate_deeper_in_the_chain_of_records_is_left_out(tmp_path):
    """A RUN.md written before superseded records were dropped holds a publication twice (its
    republication above its first publication): the older copy goes, the rest of the chain stays."""
    def record(command, cell, beneath=""):
        text = (f"# How these results were made\n\n- command: `{command}`\n\n| runs of | runs |\n|---|---|\n"
                f"| {cell} | 3 |\n")
        if beneath:
            text += ("\n## Carried cells\n\nTaken from ...\n\nThat publication's RUN.md:\n\n"
                     + "\n".join("#" + line if line.startswith("#") else line for line in beneath.splitlines()))
        return text

    out = tmp_path / "docs" / "results" / "paper"
    out.mkdir(parents=True)
    first = record("first", "mnist/svae/d10")
    (out / "RUN.md").write_text(record("d20 republished", "mnist/svae/d20",
                                       record("d20", "mnist/svae/d20", first)))
    fake_run(tmp_path)
    (tmp_path / "results" / "tables" / "carried.json").write_text(json.dumps(CARRIED))
    publish(tmp_path, out, "d2")
    run = (out / "RUN.md").read_text()
    assert "`d20 republished`" in run and "`d20`" not in run and "`first`" in run
    assert run.index("`d2`") < run.index("`d20 republished`") < run.index("`first`")
    assert "## How these results were made" in run and "### How these results were made" in run
    assert "#### How these results were made" not in run


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


def test_readme_block_is_what_the_published_folders_say():
    """README.md's published-results block is generated; a hand edit or a stale block fails."""
    from vaepriors.publish import README_END, README_START, readme_block

    text = (REPO_ROOT / "README.md").read_text()
    block = README_START + text.split(README_START, 1)[1].split(README_END, 1)[0] + README_END
    assert block == readme_block(REPO_ROOT / "docs" / "results", REPO_ROOT)


def test_readme_block_from_a_comparison(tmp_path):
    from vaepriors.publish import README_END, README_START, update_readme

    folder = tmp_path / "docs" / "results" / "run1" / "tables"
    folder.mkdir(parents=True)
    (folder / "paper_comparison.csv").write_text(
        "source,dataset,model,latent_dim,metric,statistic,paper,paper_sd,paper_n,ours_mean,ours_sd,"
        "ours_n,diff,diff_se,within_1_nat,status\n"
        "p1,mnist,nvae,2,loglik,mean,-135.73,,10,-135.0,0.5,3,0.73,2.5,True,ok\n"
        "p1,mnist,svae,2,loglik,mean,-132.5,,10,,,0,,,,missing\n")
    (folder / "paper_budget.json").write_text('{"label": "budget run against p1: seeds 3 (paper 10)"}')
    # a run at the paper's own protocol comes first, whatever its name
    protocol = tmp_path / "docs" / "results" / "zz-paper" / "tables"
    protocol.mkdir(parents=True)
    (protocol / "paper_comparison.csv").write_text((folder / "paper_comparison.csv").read_text())
    (protocol / "paper_budget.json").write_text('{"label": "training protocol of p1, with seeds 5 (paper 10)"}')
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nold\n{README_END}\n\ntail\n")
    update_readme(readme, tmp_path / "docs" / "results")
    text = readme.read_text()
    assert "old" not in text and text.endswith("\n\ntail\n")
    assert text.index("[zz-paper]") < text.index("[run1]")
    assert "[run1](docs/results/run1/summary.md)**: budget run against p1" in text
    assert "beside p1: 1 of 1 within 1 nat" in text
    # the table for the run at the paper's protocol only; a budget run is one paragraph
    assert text.count("| mnist | 2 | -135.73 | -135.00 ± 0.50 (n = 3) |") == 1
    assert text.index("| mnist | 2 | -135.73") < text.index("[run1]")
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="lacks the markers"):
        update_readme(readme, tmp_path / "docs" / "results")


def test_the_record_counts_the_decoder_sweeps_runs_beside_the_grids(tmp_path):
    from vaepriors.publish import run_record

    fake_run(tmp_path)
    sweep = tmp_path / "results" / "decoder_sweep" / "h64"
    run = sweep / "models" / "mnist" / "svae" / "d2" / "s1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"meta": {"cpu": "Test CPU 9000"}}))
    (run / "history.csv").write_text("epoch,seconds\n1,900\n")
    (sweep / "metrics" / "mnist" / "svae" / "d2").mkdir(parents=True)
    (sweep / "metrics" / "mnist" / "svae" / "d2" / "s1.json").write_text("{}")
    rec = run_record(tmp_path)
    assert (rec["runs"], rec["evaluated"], rec["train_seconds"]) == (2, 2, 4500.0)
