"""Our tables beside published numbers (issue 16): reference files, matching, missing cells,
grids without references, the S-VAE/N-VAE pattern, the budget label and the generated verdict."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vaepriors.config import REPO_ROOT
from vaepriors.evaluation import replication as R
from vaepriors.evaluation.tables import write_tables

REFERENCES = REPO_ROOT / "workflow" / "references"
HEADER = ",".join(R.REFERENCE_COLUMNS)


def write_refs(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def run_metrics(dataset, model, d, seed, loglik, acc=None, knn=None, shared=None, elbo=None) -> dict:
    run = {"dataset": dataset, "model": model, "latent_dim": d, "seed": seed,
           "loglik": {"mean": loglik, "sd": 20.0, "K": 500, "n_test": 100}}
    if elbo is not None:
        run["elbo"] = {"elbo": elbo, "rec": -elbo - 20.0, "kl": 20.0}
    if acc is not None:
        run["clustering"] = {"method": "kmeans", "k": 10, "acc": acc, "nmi": 0.5, "ari": 0.4}
    if knn is not None:  # {n_labels: test accuracy as a fraction}
        run["knn"] = {str(n): {"k": 5, "val_acc": {"5": a}, "test_acc": a} for n, a in knn.items()}
    if shared is not None:
        run["loglik_shared_sample"] = {"mean": shared, "sd": 20.0, "K": 500, "n_test": 100}
    return run


def tables(tmp_path: Path, runs: list[dict]) -> pd.DataFrame:
    write_tables(runs, tmp_path / "tables")
    return R.long_results(pd.read_csv(tmp_path / "tables" / f"{t}.csv")
                          for t in ("loglik", "clustering", "knn"))


GRID = {("mnist", m, d) for m in ("nvae", "svae") for d in (2, 40)}


def test_shipped_reference_file_is_table_1_of_davidson_2018():
    refs = R.load_references([REFERENCES / "tables"])
    ll = refs[(refs["source"] == "davidson2018") & (refs["metric"] == "loglik")]
    assert len(ll) == 10
    got = {(r.model, int(r.latent_dim)): r.value for r in ll.itertuples()}
    assert got[("nvae", 10)] == -93.84 and got[("svae", 10)] == -93.16
    assert got[("nvae", 2)] == -135.73 and got[("svae", 40)] == -90.87
    # Table 1 is internally consistent in our sign convention: ELBO = -rec - KL.
    t1 = refs[refs["source"] == "davidson2018"].pivot_table(
        index=["model", "latent_dim"], columns="metric", values="value")
    assert ((t1["elbo"] + t1["rec"] + t1["kl"]).abs() < 0.015).all()
    protocols = R.load_protocols([REFERENCES / "protocols"])
    assert protocols["davidson2018"]["max_epochs"] == 500
    assert protocols["davidson2018"]["seeds"] == 10


def test_rows_match_results_with_difference_in_standard_errors(tmp_path):
    refs = R.load_references([write_refs(tmp_path / "r.csv", [
        "p,mnist,nvae,2,loglik,-135.0,,10,mean,",
        "p,mnist,svae,2,loglik,-132.0,,10,mean,",
        "p,mnist,nvae,10,loglik,-93.0,,10,mean,not in the grid",
        "p,fashion_mnist,nvae,2,loglik,-200.0,,10,mean,dataset not in the grid",
    ])])
    runs = [run_metrics("mnist", "nvae", 2, s, v) for s, v in enumerate([-134.0, -135.0, -136.6])]
    runs += [run_metrics("mnist", "svae", 2, s, v) for s, v in enumerate([-131.5, -132.5])]
    comp = R.compare(refs, tables(tmp_path, runs), GRID)
    assert list(comp["model"]) == ["nvae", "svae"]
    nvae = comp.iloc[0]
    mean, sd = pd.Series([-134.0, -135.0, -136.6]).mean(), pd.Series([-134.0, -135.0, -136.6]).std()
    assert nvae["ours_mean"] == pytest.approx(mean) and nvae["ours_n"] == 3
    assert nvae["diff"] == pytest.approx(mean + 135.0)
    assert nvae["diff_se"] == pytest.approx((mean + 135.0) / (sd / math.sqrt(3)))
    assert bool(nvae["within_1_nat"]) is True and nvae["status"] == "ok"


def test_a_covered_cell_without_result_is_reported_missing(tmp_path):
    refs = R.load_references([write_refs(tmp_path / "r.csv", [
        "p,mnist,nvae,2,loglik,-135.0,,10,mean,",
        "p,mnist,nvae,40,loglik,-89.0,,10,mean,",
        "p,mnist,nvae,40,elbo,-95.0,,10,mean,",
    ])])
    runs = [run_metrics("mnist", "nvae", 2, 0, -137.5)]
    comp = R.compare(refs, tables(tmp_path, runs), GRID)
    assert list(comp["status"]) == ["ok", "missing", "missing"]
    assert bool(comp.iloc[0]["within_1_nat"]) is False  # 2.5 nats off
    assert math.isnan(comp.iloc[0]["diff_se"])  # one seed: no standard error
    md = R.markdown(comp, R.pattern(refs, tables(tmp_path, runs), GRID))
    assert md.count("missing") == 2
    text = R.replication_paragraph(comp, pd.DataFrame(columns=R.PATTERN_COLUMNS), "")
    assert "0 of 1 cells" in text and "2 covered cell(s) have no result yet" in text


def test_the_verdict_says_whether_a_log_likelihood_miss_is_in_the_elbo_or_in_the_estimate(tmp_path):
    refs = R.load_references([write_refs(tmp_path / "r.csv", [
        "p,mnist,nvae,2,loglik,-135.0,,10,mean,", "p,mnist,nvae,2,elbo,-137.0,,10,mean,",
        "p,mnist,svae,2,loglik,-132.0,,10,mean,", "p,mnist,svae,2,elbo,-133.0,,10,mean,",
        "p,mnist,nvae,40,loglik,-89.0,,10,mean,", "p,mnist,nvae,40,elbo,-95.0,,10,mean,",
    ])])
    # nvae d = 2: LL 3 nats above the paper's, ELBO 0.2 nats: the miss is in the gain (2.00 vs 4.80);
    # svae d = 2: both within 1 nat; nvae d = 40: LL and ELBO both 2 nats low, the gain equal (6.00).
    cells = [("nvae", 2, -132.0, -136.8), ("svae", 2, -132.3, -133.2), ("nvae", 40, -91.0, -97.0)]
    runs = [run_metrics("mnist", m, d, seed, ll, elbo=elbo) for m, d, ll, elbo in cells for seed in (0, 1)]
    text = R.replication_paragraph(R.compare(refs, tables(tmp_path, runs), GRID),
                                   pd.DataFrame(columns=R.PATTERN_COLUMNS), "")
    assert ("Importance-sampling gain over the ELBO (log-likelihood − ELBO, nats), paper / ours: "
            "nvae d = 2 2.00 / 4.80; nvae d = 40 6.00 / 6.00; svae d = 2 1.00 / 0.90.") in text
    assert ("Of the 2 cell(s) whose log-likelihood misses the paper's by more than 1 nat, the miss "
            "lies mostly in this gain, not in the ELBO, in 1 (nvae d = 2).") in text


def test_a_grid_without_references_gets_an_empty_comparison_and_no_error(tmp_path):
    refs = R.load_references([REFERENCES / "tables"])
    runs = [run_metrics("digits", m, 2, 0, -20.0) for m in ("nvae", "svae")]
    grid = {("digits", "nvae", 2), ("digits", "svae", 2)}
    results = tables(tmp_path, runs)
    comp, pat = R.compare(refs, results, grid), R.pattern(refs, results, grid)
    assert comp.empty and pat.empty
    assert "No reference numbers" in R.markdown(comp, pat)
    assert "no replication verdict" in R.replication_paragraph(comp, pat, "")


def test_latent_dim_left_empty_compares_at_every_d(tmp_path):
    refs = R.load_references([write_refs(tmp_path / "r.csv", [
        "q,mnist,nvae,,cluster_acc,0.80,0.05,7,mean,any d"])])
    runs = [run_metrics("mnist", "nvae", d, 0, -100.0, acc=0.7) for d in (2, 40)]
    comp = R.compare(refs, tables(tmp_path, runs), GRID)
    assert list(comp["latent_dim"]) == [2, 40]
    # Only the cells that were trained are covered (a grid with per-model latent dims).
    only_40 = R.compare(refs, tables(tmp_path, runs), {("mnist", "nvae", 40), ("mnist", "svae", 2)})
    assert list(only_40["latent_dim"]) == [40]
    assert comp["diff"].tolist() == pytest.approx([-0.1, -0.1])
    assert comp["within_1_nat"].isna().all()  # not a quantity in nats


@pytest.mark.parametrize("ours, agree", [
    # S ahead at d = 2 and behind at d = 40, as in the paper: agrees at both.
    ({2: (-133.0, -135.0), 40: (-91.0, -89.0)}, {2: True, 40: True}),
    # S behind at d = 2: disagrees there only.
    ({2: (-136.0, -135.0), 40: (-91.0, -89.0)}, {2: False, 40: True}),
])
def test_pattern_sign_of_svae_minus_nvae(tmp_path, ours, agree):
    refs = R.load_references([REFERENCES / "tables"])
    runs = []
    for d, (s_ll, n_ll) in ours.items():
        for seed, jitter in enumerate((-0.1, 0.1)):
            runs += [run_metrics("mnist", "svae", d, seed, s_ll + jitter),
                     run_metrics("mnist", "nvae", d, seed, n_ll - jitter)]
    pat = R.pattern(refs, tables(tmp_path, runs), GRID)
    assert dict(zip(pat["latent_dim"], pat["agree"])) == agree
    assert list(pat["paper_sign"]) == [1, -1]  # -132.50 > -135.73; -90.87 < -88.93
    assert pat["significant"].all()  # differences of 1-2 nats with sd ~0.14
    text = R.replication_paragraph(
        R.compare(refs, tables(tmp_path, runs), GRID), pat, "")
    if all(agree.values()):
        assert "agrees with the paper at d = 2, 40" in text
    else:
        assert "agrees with the paper at d = 40 and disagrees at d = 2" in text


@pytest.mark.parametrize("row, message", [
    ("p,mnist,nvae,two,loglik,-1,,10,mean,", "row 2: column 'latent_dim' = 'two' is not an integer"),
    ("p,mnist,nvae,2,loglik,,,10,mean,", "row 2: column 'value' is empty"),
    ("p,mnist,nvae,2,loglik,nan,,10,mean,", "row 2: column 'value' = 'nan' is not finite"),
    ("p,,nvae,2,loglik,-1,,10,mean,", "row 2: column 'dataset' is empty"),
])
def test_malformed_reference_rows_are_named(tmp_path, row, message):
    path = write_refs(tmp_path / "bad.csv", [row])
    with pytest.raises(R.ReferenceFileError, match=message) as err:
        R.load_references([path])
    assert str(path) in str(err.value)


def test_reference_file_without_a_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("source,dataset,model\np,mnist,nvae\n")
    with pytest.raises(R.ReferenceFileError, match=f"{path} lacks column"):
        R.load_references([path])


def config_record(model, d, seed, max_epochs, epochs, warmup=4, patience=10) -> dict:
    return {"dataset": "mnist", "model": model, "latent_dim": d, "seed": seed, "epochs": epochs,
            "stop_reason": "max_epochs",
            "train": {"max_epochs": max_epochs, "warmup_epochs": warmup, "patience": patience}}


def test_budget_read_from_the_runs_and_labelled_against_the_protocol():
    protocols = R.load_protocols([REFERENCES / "protocols"])
    small = [config_record(m, 2, s, 20, 20) for m in ("nvae", "svae") for s in range(3)]
    used = R.budget(small)
    assert used["max_epochs"] == [20, 20] and used["seeds_per_cell"] == [3, 3]
    label = R.budget_label(used, protocols, [500])
    assert label.startswith("budget run against davidson2018")
    assert "max epochs 20 (paper 500)" in label and "seeds 3 (paper 10)" in label
    assert "warmup epochs 4 (paper 100)" in label and "importance" not in label
    full = [config_record("nvae", 10, s, 500, 480, warmup=100, patience=50) for s in range(10)]
    assert R.budget_label(R.budget(full), protocols, [500]) == "training protocol of davidson2018"
    assert R.budget_label(R.budget(full[:2]), protocols, [500]) == (
        "training protocol of davidson2018, with seeds 2 (paper 10)")


def test_compare_script_end_to_end_writes_the_verdict(tmp_path):
    runs = []
    for d in (2, 40):
        for seed in range(2):
            runs += [run_metrics("mnist", "nvae", d, seed, (-135.5, -89.0)[d == 40] + seed),
                     run_metrics("mnist", "svae", d, seed, (-132.0, -91.0)[d == 40] + seed)]
    write_tables(runs, tmp_path / "tables")
    configs = []
    for run in runs:
        path = tmp_path / "models" / f"{run['model']}-{run['latent_dim']}-{run['seed']}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(config_record(run["model"], run["latent_dim"], run["seed"],
                                                 20, 20)))
        configs.append(str(path))
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "compare_paper.py"),
                    "--tables", *(str(tmp_path / "tables" / f"{t}.csv")
                                  for t in ("loglik", "clustering", "knn")),
                    "--references", str(REFERENCES / "tables"),
                    "--protocols", str(REFERENCES / "protocols"),
                    "--run-configs", *configs, "--importance-samples", "500",
                    "--out-dir", str(out)], check=True, capture_output=True)
    comp = pd.read_csv(out / "paper_comparison.csv")
    # Grid: nvae, svae at d = 2, 40 on MNIST: 2 models x 2 d x (4 Table-1 metrics + 3 Table-2
    # k-NN label counts); only loglik here.
    assert list(comp.columns) == R.COMPARISON_COLUMNS
    assert len(comp) == 28 and (comp["status"] == "ok").sum() == 4
    assert (comp["metric"].str.startswith("knn_") & (comp["status"] == "missing")).sum() == 12
    pat = pd.read_csv(out / "paper_pattern.csv")
    assert list(pat.columns) == R.PATTERN_COLUMNS
    assert pat["agree"].tolist() == [True, True] and set(pat["metric"]) == {"loglik"}
    budget = json.loads((out / "paper_budget.json").read_text())
    assert budget["label"].startswith("budget run against davidson2018")
    md = (out / "paper_comparison.md").read_text()
    assert "Training budget: budget run" in md and "| nvae | 2 | loglik | -135.73 |" in md
    text = R.replication_paragraph(comp, pat, budget["label"])
    assert text.startswith("**This is a budget run")
    # Means -135.0, -131.5, -88.5, -90.5 against -135.73, -132.50, -88.93, -90.87.
    assert "4 of 4 cells in nats" in text and "for the log-likelihood 4 of 4" in text

    # Cells carried from an earlier publication are in the grid too: runs at d = 40 only, d = 2
    # carried, compare as before.
    carried = tmp_path / "carried.json"
    carried.write_text(json.dumps({"source": "old", "cells": [
        {"dataset": "mnist", "model": m, "latent_dim": 2, "n": 2} for m in ("nvae", "svae")]}))
    at40 = [c for c in configs if c.endswith(("-40-0.json", "-40-1.json"))]
    for extra, rows in (([], 14), (["--carried", str(carried)], 28)):
        subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "compare_paper.py"),
                        "--tables", *(str(tmp_path / "tables" / f"{t}.csv") for t in ("loglik", "clustering", "knn")),
                        "--references", str(REFERENCES / "tables"), "--run-configs", *at40,
                        "--importance-samples", "500", "--out-dir", str(out), *extra], check=True, capture_output=True)
        comp = pd.read_csv(out / "paper_comparison.csv")
        assert len(comp) == rows and set(comp["latent_dim"]) == ({40} if rows == 14 else {2, 40})


# --- S - N with a Welch test, the crossover, Table 2 (k-NN), the shared-sample diagnostic --------

S_SEEDS = [-90.1, -91.3, -90.7, -92.0]
N_SEEDS = [-89.5, -89.9, -90.8]


def test_welch_from_table_statistics_matches_scipy_on_the_seeds():
    s, n = np.array(S_SEEDS), np.array(N_SEEDS)
    # By hand: Welch SE and Welch-Satterthwaite degrees of freedom.
    va, vb = s.var(ddof=1) / len(s), n.var(ddof=1) / len(n)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(s) - 1) + vb**2 / (len(n) - 1))
    ref = stats.ttest_ind(s, n, equal_var=False)
    w = R.welch(s.mean(), s.std(ddof=1), len(s), n.mean(), n.std(ddof=1), len(n))
    assert w["diff"] == pytest.approx(s.mean() - n.mean())
    assert w["se"] == pytest.approx(se) and w["t"] == pytest.approx((s.mean() - n.mean()) / se)
    assert w["t"] == pytest.approx(ref.statistic) and w["p"] == pytest.approx(ref.pvalue)
    assert w["df"] == pytest.approx(df) and w["df"] == pytest.approx(ref.df)
    # Fewer than two seeds on a side, or no spread at all: no test.
    assert all(math.isnan(w[k]) for w in (R.welch(-90, 0.5, 1, -89, 0.5, 3),
                                          R.welch(-90, 0.0, 3, -89, 0.0, 3))
               for k in ("se", "t", "df", "p"))


def test_pattern_carries_the_welch_test_of_the_seeds(tmp_path):
    refs = R.load_references([REFERENCES / "tables"])
    n_seeds = [-88.9, -89.3, -89.6]
    runs = [run_metrics("mnist", "svae", 40, i, v) for i, v in enumerate(S_SEEDS)]
    runs += [run_metrics("mnist", "nvae", 40, i, v) for i, v in enumerate(n_seeds)]
    # d = 2: the difference is beyond 2 SE (t ~ 3.1) but with ~1.5 degrees of freedom p > 0.05.
    runs += [run_metrics("mnist", "svae", 2, i, v) for i, v in enumerate((-133.0, -133.4))]
    runs += [run_metrics("mnist", "nvae", 2, i, v) for i, v in enumerate((-134.0, -133.8))]
    pat = R.pattern(refs, tables(tmp_path, runs), GRID)
    assert list(pat.columns) == R.PATTERN_COLUMNS
    d2, d40 = pat.iloc[0], pat.iloc[1]
    ref = stats.ttest_ind(S_SEEDS, n_seeds, equal_var=False)
    assert d40["ours_diff"] == pytest.approx(np.mean(S_SEEDS) - np.mean(n_seeds))
    assert d40["t"] == pytest.approx(ref.statistic) and d40["df"] == pytest.approx(ref.df)
    assert d40["p_value"] == pytest.approx(ref.pvalue) and ref.pvalue < 0.05
    assert bool(d40["significant"]) is True
    assert d40["paper_sign"] == -1 and d40["ours_sign"] == -1 and bool(d40["agree"])
    ref2 = stats.ttest_ind([-133.0, -133.4], [-134.0, -133.8], equal_var=False)
    assert abs(d2["t"]) > 2 and d2["p_value"] == pytest.approx(ref2.pvalue) and ref2.pvalue > 0.05
    assert bool(d2["significant"]) is False  # p < 0.05 decides, not 2 SE
    text = R.replication_paragraph(R.compare(refs, tables(tmp_path, runs), GRID), pat, "")
    assert (f"d = 40 {np.mean(S_SEEDS) - np.mean(n_seeds):+.2f} ± {d40['ours_se']:.2f} "
            f"(p = {ref.pvalue:.3f})") in text
    assert "1 of 2 of our differences significant at p < 0.05" in text


def _signs(signs: dict, paper: dict | None = None) -> pd.DataFrame:
    paper = paper or signs
    return pd.DataFrame([{"dataset": "mnist", "metric": "loglik", "latent_dim": d,
                          "paper_sign": paper[d], "ours_sign": s} for d, s in signs.items()])


@pytest.mark.parametrize("ours, text", [
    ({2: 1, 5: 1, 10: -1, 20: -1, 40: -1}, "between d = 5 and 10"),
    ({2: 1, 5: 1, 10: 1, 20: 1, 40: 1}, "no crossover in the grid"),
    ({2: -1, 5: -1, 10: -1, 20: -1, 40: -1}, "negative at every d compared"),
    ({2: 1, 5: -1, 10: 1, 20: -1, 40: -1}, "between d = 2 and 5"),  # the first turn counts
])
def test_crossover_is_the_first_d_where_s_minus_n_turns_negative(ours, text):
    paper = {2: 1, 5: 1, 10: 1, 20: -1, 40: -1}  # Table 1 of Davidson et al.
    row = R.crossovers(_signs(ours, paper)).iloc[0]
    assert row["paper"] == "between d = 10 and 20" and row["ours"] == text
    assert row["dims"] == [2, 5, 10, 20, 40]


def test_crossover_of_table_1_is_reported_in_markdown_and_paragraph(tmp_path):
    refs = R.load_references([REFERENCES / "tables"])
    ours = {2: (-133.0, -135.0), 5: (-109.0, -110.0), 10: (-94.5, -94.0), 20: (-90.0, -89.0),
            40: (-92.0, -89.0)}
    runs = [run_metrics("mnist", m, d, seed, v + jitter)
            for d, pair in ours.items() for m, v in zip(("svae", "nvae"), pair)
            for seed, jitter in enumerate((-0.1, 0.1))]
    grid = {("mnist", m, d) for m in ("nvae", "svae") for d in ours}
    results = tables(tmp_path, runs)
    pat = R.patterns(refs, results, grid)
    md = R.markdown(R.compare(refs, results, grid), pat)
    text = R.replication_paragraph(R.compare(refs, results, grid), pat, "")
    for out in (md, text):
        assert "paper: between d = 10 and 20; ours: between d = 5 and 10" in out
    assert "agrees with the paper at d = 2, 5, 20, 40 and disagrees at d = 10" in text


@pytest.mark.parametrize("s_minus_n, answer", [
    ({2: 2.0, 5: 1.0, 10: -0.5, 20: -1.0, 40: -3.0},
     "In the standard log-likelihood it holds (svae ahead at d = 2, 5, behind at d = 20, 40, each "
     "at p < 0.05), with the crossover between d = 5 and 10 against the paper's between d = 10 and 20; "
     "in the ELBO, which involves no estimator, ours is between d = 10 and 20, as the paper's."),
    ({2: 2.0, 5: 1.0, 10: 0.5, 20: -1.0, 40: -3.0},
     "it holds (svae ahead at d = 2, 5, behind at d = 20, 40, each at p < 0.05), with the "
     "crossover where the paper's is (between d = 10 and 20)"),
    ({2: -2.0, 5: -1.0, 10: -0.5, 20: -1.0, 40: -3.0},
     "it does not hold (ahead nowhere, behind at d = 2, 5, 20, 40, each at p < 0.05), with the "
     "crossover negative at every d compared against the paper's between d = 10 and 20"),
])
def test_the_paragraph_answers_whether_the_papers_claim_holds(tmp_path, s_minus_n, answer):
    """The answer from the Welch tests per d and the crossovers: the standard log-likelihood (a
    difference of 0.5 with two seeds 0.14 apart is not significant at d = 10), then the ELBO (here
    its S - N is the paper's Table 1 ELBO gap at every d, crossing between 10 and 20)."""
    refs = R.load_references([REFERENCES / "tables"])
    paper_elbo = {2: 3.36, 5: 1.79, 10: 0.66, 20: -1.36, 40: -6.35}
    runs = [run_metrics("mnist", m, d, seed, -100.0 + (diff if m == "svae" else 0.0) + jitter,
                        elbo=-105.0 + (paper_elbo[d] if m == "svae" else 0.0) + jitter)
            for d, diff in s_minus_n.items() for m in ("svae", "nvae")
            for seed, jitter in enumerate((-0.1, 0.1))]
    grid = {("mnist", m, d) for m in ("nvae", "svae") for d in s_minus_n}
    results = tables(tmp_path, runs)
    text = R.replication_paragraph(R.compare(refs, results, grid), R.patterns(refs, results, grid), "")
    assert "Does the paper's claim (svae ahead of nvae at low d, behind at high d) hold here?" in text
    assert answer in text


def test_shipped_table_2_is_knn_accuracy_as_fractions_marked_secondary():
    refs = R.load_references([REFERENCES / "tables"])
    knn = refs[refs["metric"].str.startswith("knn_")]
    assert len(knn) == 30 and set(knn["source"]) == {"davidson2018"}
    assert set(knn["metric"]) == {"knn_100", "knn_600", "knn_1000"}
    assert set(knn["latent_dim"]) == {2, 5, 10, 20, 40}
    assert knn["value"].between(0, 1).all()  # fractions, like our knn tables (sklearn score)
    assert knn["note"].str.contains("Table 2, secondary transcription").all()
    got = {(r.model, int(r.latent_dim), r.metric): r.value for r in knn.itertuples()}
    assert got[("nvae", 2, "knn_100")] == 0.726 and got[("svae", 2, "knn_100")] == 0.779
    assert got[("nvae", 40, "knn_100")] == 0.723 and got[("svae", 40, "knn_100")] == 0.677
    assert got[("nvae", 5, "knn_1000")] == 0.920 and got[("svae", 40, "knn_1000")] == 0.904


def test_a_knn_row_flows_through_the_comparison_like_a_loglik_row(tmp_path):
    refs = R.load_references([REFERENCES / "tables"])
    runs = [run_metrics("mnist", "nvae", 2, s, -135.0, knn={100: a}) for s, a in enumerate((0.74, 0.76))]
    runs += [run_metrics("mnist", "svae", 2, s, -133.0, knn={100: a}) for s, a in enumerate((0.78, 0.80))]
    results = tables(tmp_path, runs)
    comp = R.compare(refs, results, GRID)
    row = comp[(comp["metric"] == "knn_100") & (comp["model"] == "nvae") & (comp["latent_dim"] == 2)]
    row = row.iloc[0]
    assert row["status"] == "ok" and row["paper"] == 0.726 and row["ours_mean"] == pytest.approx(0.75)
    assert row["diff"] == pytest.approx(0.024) and row["diff_pp"] == pytest.approx(2.4)
    assert row["diff_se"] == pytest.approx(0.024 / (np.std([0.74, 0.76], ddof=1) / math.sqrt(2)))
    assert pd.isna(row["within_1_nat"])  # "within 1 nat" is for nats only
    assert "secondary transcription" in row["note"] and math.isnan(row["ours_shared_mean"])
    # The rows without a result (600, 1000 labels, d = 40) are missing, as for the log-likelihood.
    knn = comp[comp["metric"].str.startswith("knn_")]
    assert len(knn) == 12 and (knn["status"] == "ok").sum() == 2
    assert comp[comp["metric"] == "loglik"]["diff_pp"].isna().all()
    pat = R.patterns(refs, results, GRID)
    k = pat[pat["metric"] == "knn_100"].iloc[0]
    assert k["ours_diff"] == pytest.approx(0.04) and k["paper_diff"] == pytest.approx(0.053)
    assert bool(k["agree"])
    md = R.markdown(comp, pat)
    assert "| nvae | 2 | knn_100 | 0.726 | 0.750 ± 0.014 | 2 | +2.4 pp |" in md
    assert "[1] Davidson et al. 2018, Table 2, secondary transcription" in md
    assert "svae − nvae in knn_100 per d (percentage points" in md
    assert "| mnist | 2 | +5.3 | +4.0 ± 1.4 |" in md
    text = R.replication_paragraph(comp, pat, "")
    assert "k-NN accuracy on latent means against davidson2018 (reference rows from a secondary " \
           "transcription, not the original table): 0 of 2 cells within 1 percentage point" in text
    assert "agrees with the paper in 1 of 1 (labels, d) pairs" in text


def test_shared_sample_diagnostic_sits_beside_paper_loglik_rows(tmp_path):
    refs = R.load_references([write_refs(tmp_path / "r.csv", [
        "p,mnist,nvae,2,loglik,-135.0,,10,mean,",
        "p,mnist,svae,2,loglik,-132.0,,10,mean,",
        "p,mnist,nvae,2,elbo,-137.0,,10,mean,",
        "p,mnist,nvae,40,loglik,-89.0,,10,mean,",
    ])])
    # nvae d = 2: standard -137 (2 off), diagnostic -135.5 (0.5 off): closer to the diagnostic.
    runs = [run_metrics("mnist", "nvae", 2, s, -137.0 + j, shared=-135.5 + j)
            for s, j in enumerate((-0.2, 0.2))]
    runs += [run_metrics("mnist", "svae", 2, 0, -132.5),  # an older run: no diagnostic
             run_metrics("mnist", "svae", 40, 0, -91.0, shared=-88.0)]
    runs += [run_metrics("mnist", "nvae", 40, 0, -89.5, shared=-86.0)]
    comp = R.compare(refs, tables(tmp_path, runs), GRID).set_index(["model", "latent_dim", "metric"])
    n2 = comp.loc[("nvae", 2, "loglik")]
    assert n2["ours_shared_mean"] == pytest.approx(-135.5) and n2["shared_diff"] == pytest.approx(-0.5)
    assert n2["diff"] == pytest.approx(-2.0)  # the headline stays the standard estimator
    assert math.isnan(comp.loc[("svae", 2, "loglik"), "ours_shared_mean"])
    assert math.isnan(comp.loc[("nvae", 2, "elbo"), "ours_shared_mean"])  # loglik rows only
    assert comp.loc[("nvae", 40, "loglik"), "shared_diff"] == pytest.approx(3.0)
    comp = comp.reset_index()
    md = R.markdown(comp, pd.DataFrame(columns=R.PATTERN_COLUMNS))
    assert "| -2.00 |" in md and "| -135.50 | -0.50 |" in md and "not a log-likelihood" in md
    text = R.replication_paragraph(comp, pd.DataFrame(columns=R.PATTERN_COLUMNS), "")
    assert ("on average 1.25 nats from our standard estimator and 1.75 nats from the shared-sample "
            "diagnostic") in text
    assert "the diagnostic is the closer one in 1 of 2 cells (nvae d = 2)" in text


def test_the_verdict_says_which_estimator_reproduces_the_papers_gap(tmp_path):
    """S - N in the standard estimator, the ELBO and the diagnostic, each a Welch test across
    seeds, beside the paper's log-likelihood and ELBO gaps (Table 1 at d = 10: +0.68, +0.66)."""
    refs = R.load_references([REFERENCES / "tables"])
    values = {  # (model, seed): (standard, diagnostic, ELBO)
        ("nvae", 0): (-93.0, -93.8, -98.0), ("nvae", 1): (-93.4, -94.2, -98.5),
        ("svae", 0): (-93.3, -93.4, -97.7), ("svae", 1): (-93.3, -93.5, -97.7)}
    runs = [run_metrics("mnist", m, 10, s, ll, shared=sh, elbo=el) for (m, s), (ll, sh, el) in values.items()]
    grid = {("mnist", m, 10) for m in ("nvae", "svae")}
    results = tables(tmp_path, runs)
    pat = R.patterns(refs, results, grid).set_index("metric")

    def welch(i):
        a = [values[("svae", s)][i] for s in (0, 1)]
        b = [values[("nvae", s)][i] for s in (0, 1)]
        return np.mean(a) - np.mean(b), math.sqrt(np.var(a, ddof=1) / 2 + np.var(b, ddof=1) / 2)

    for i, metric in enumerate(("loglik", R.SHARED_METRIC, "elbo")):
        diff, se = welch(i)
        assert pat.loc[metric, "ours_diff"] == pytest.approx(diff)
        assert pat.loc[metric, "ours_se"] == pytest.approx(se)
    assert pat.loc[R.SHARED_METRIC, "paper_diff"] == pytest.approx(-93.16 + 93.84)  # the paper's LL
    assert pat.loc["elbo", "paper_diff"] == pytest.approx(-97.70 + 98.36)
    text = R.replication_paragraph(R.compare(refs, results, grid), pat.reset_index(), "")
    assert ("d = 10: paper +0.68; ours -0.10 ± 0.20 with the standard estimator, +0.55 ± 0.21 with "
            "the diagnostic; ELBO paper +0.66, ours +0.55 ± 0.25") in text
    assert "The diagnostic's gap is the closer one to the paper's at d = 10 of the 1 compared." in text
    md = R.markdown(R.compare(refs, results, grid), pat.reset_index())
    assert "svae − nvae in loglik_shared (ours: the shared-sample diagnostic; paper: its log-likelihood)" in md


def test_the_paragraph_reads_files_written_before_the_new_columns(tmp_path):
    old_comp = pd.DataFrame([{"source": "p", "dataset": "mnist", "model": "nvae", "latent_dim": 2,
                              "metric": "loglik", "statistic": "mean", "paper": -135.0,
                              "paper_sd": math.nan, "paper_n": 10, "ours_mean": -135.5,
                              "ours_sd": 0.1, "ours_n": 3, "diff": -0.5, "diff_se": -8.7,
                              "within_1_nat": True, "status": "ok"}])
    old_pat = pd.DataFrame([{"dataset": "mnist", "latent_dim": 2, "paper_diff": 3.0, "ours_diff": 2.0,
                             "ours_se": 0.5, "paper_sign": 1, "ours_sign": 1, "agree": True,
                             "significant": True}])
    text = R.replication_paragraph(old_comp, old_pat, "")
    assert "1 of 1 cells in nats" in text and "d = 2 +2.00 ± 0.50 nats" in text
    assert "shared-sample" not in text and "k-NN" not in text
