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


def test_a_table_of_step_times_differs_only_in_its_results(tmp_path):
    # the spherical study's step times differ from run to run (the DVC leg reported them as a
    # difference); its non-finite counts must not
    tables = tmp_path / "results/tables"
    tables.mkdir(parents=True)
    csv_path, md_path = tables / "spherical_stability.csv", tables / "spherical_stability.md"

    def write(step_ms, non_finite):
        csv_path.write_text(f"distribution,m,kappa,step_ms,non_finite\nvMF,3,1,{step_ms},{non_finite}\n")
        md_path.write_text(f"| m | vMF ms | vMF non-finite |\n|---|---|---|\n| 3 | {step_ms} | {non_finite} |\n")

    write(5.89, 0.0)
    reference = campaign.results(tmp_path)
    write(6.12, 0.0)
    assert campaign.differences(reference, campaign.results(tmp_path)) == []
    write(6.12, 0.5)
    assert campaign.differences(reference, campaign.results(tmp_path)) == [
        "differs results/tables/spherical_stability.csv"]
