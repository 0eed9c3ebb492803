"""The kill campaign in small form (issue 27; the full one: `make faults`): a seeded pair of
SIGKILLs of Snakemake's whole process group while it builds a table from one run, each resumed
with the README's commands, ends with the same metrics and table as an uninterrupted run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location("campaign", Path(__file__).parent / "faults" / "campaign.py")
campaign = importlib.util.module_from_spec(spec)
spec.loader.exec_module(campaign)


def test_killed_snakemake_resumes_to_the_same_results(tmp_path):
    rows = campaign.campaign(["snakemake"], points=2, seed=0, targets=["results/tables/loglik.csv"],
                             work=tmp_path, models=["nvae"])
    assert len(rows) == 2 and any(r["killed"] for r in rows)
    assert all(r["survived"] for r in rows), campaign.report(rows)


def test_a_difference_is_reported(tmp_path):
    """The comparison is not blind: a changed number, a missing file and a timing."""
    (tmp_path / "results/metrics").mkdir(parents=True)
    metric = tmp_path / "results/metrics/a.json"
    metric.write_text('{"loglik": -90.0, "seconds": 3}')
    reference = campaign.results(tmp_path)
    metric.write_text('{"loglik": -90.0, "seconds": 4}')
    assert campaign.differences(reference, campaign.results(tmp_path)) == []
    metric.write_text('{"loglik": -90.5, "seconds": 4}')
    assert campaign.differences(reference, campaign.results(tmp_path)) == ["differs results/metrics/a.json"]
    metric.unlink()
    assert campaign.differences(reference, campaign.results(tmp_path)) == ["missing results/metrics/a.json"]
