"""Aggregation over seeds and the Table-1 layout, on fake metrics dicts."""

import json

import numpy as np
import pandas as pd
import pytest

from vaepriors.evaluation.tables import aggregate, load_metrics, wide_table, write_tables


def fake_run(dataset, model, d, seed, loglik):
    run = {
        "dataset": dataset,
        "model": model,
        "latent_dim": d,
        "code_dim": d + (model == "svae"),
        "seed": seed,
        "loglik": {"mean": loglik, "sd": 20.0, "K": 500, "n_test": 100},
        "elbo": {"elbo": loglik - 3, "rec": -(loglik - 3) - 10, "kl": 10.0},
        "active_units": d,
        "clustering": {"method": "kmeans", "k": 10, "acc": 0.5 + seed / 10, "nmi": 0.4, "ari": 0.3},
        "knn": {
            "100": {"k": 3, "val_acc": {"3": 0.7}, "test_acc": 0.7},
            "1000": {"k": 5, "val_acc": {"5": 0.9}, "test_acc": 0.9},
        },
        "references": {
            "pixel_kmeans": {"acc": 0.51, "nmi": 0.5, "ari": 0.4},
            "pca_gmm": {"acc": 0.55, "nmi": 0.5, "ari": 0.4},
        },
        "meta": {"split": "test"},
    }
    return run


@pytest.fixture
def metrics():
    runs = []
    for dataset in ("mnist", "digits"):
        for model in ("svae", "nvae"):
            for d in (2, 5):
                runs += [
                    fake_run(dataset, model, d, s, -100.0 - d - s - (model == "svae"))
                    for s in (0, 1, 2)
                ]
    runs.pop()  # digits/nvae/d5 has two seeds only
    return runs


def test_aggregate_mean_and_sd(metrics):
    summary = aggregate(metrics).set_index(["dataset", "metric", "latent_dim", "model"])
    cell = summary.loc[("mnist", "loglik", 5, "svae")]
    values = [-106.0, -107.0, -108.0]
    assert cell["mean"] == pytest.approx(np.mean(values))
    assert cell["sd"] == pytest.approx(np.std(values, ddof=1))
    assert cell["n"] == 3
    assert summary.loc[("digits", "loglik", 5, "nvae"), "n"] == 2
    # A reference row is one fit per dataset, repeated in every run: it counts once.
    ref = summary.loc[("mnist", "cluster_acc", 2, "pixel_kmeans")]
    assert ref["n"] == 1 and ref["mean"] == pytest.approx(0.51)


def test_wide_layout_rows_dim_columns_model(metrics):
    wide = wide_table(aggregate(metrics), "loglik")
    assert list(wide.columns[:3]) == ["dataset", "metric", "latent_dim"]
    assert [c for c in wide.columns if c.endswith("_mean")] == ["nvae_mean", "svae_mean"]
    block = wide[(wide["dataset"] == "mnist") & (wide["metric"] == "loglik")]
    assert block["latent_dim"].tolist() == [2, 5]
    assert block["nvae_mean"].tolist() == pytest.approx([-103.0, -106.0])
    assert wide["metric"].unique().tolist() == ["loglik", "elbo", "rec", "kl", "active_units"]
    clustering = wide_table(aggregate(metrics), "clustering")
    assert [c[:-5] for c in clustering.columns if c.endswith("_mean")] == [
        "nvae",
        "svae",
        "pixel_kmeans",
        "pca_gmm",
    ]
    knn = wide_table(aggregate(metrics), "knn")
    assert knn["metric"].unique().tolist() == ["knn_100", "knn_1000"]


def test_write_tables(metrics, tmp_path):
    for run in metrics:
        path = (
            tmp_path
            / "metrics"
            / run["dataset"]
            / run["model"]
            / f"d{run['latent_dim']}"
            / f"s{run['seed']}.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
    loaded = load_metrics(tmp_path / "metrics")
    assert len(loaded) == len(metrics)
    written = write_tables(loaded, tmp_path / "tables")
    assert sorted(p.name for p in written) == sorted(
        [f"{t}.{e}" for t in ("loglik", "clustering", "knn") for e in ("csv", "md")]
        + ["summary.json", "carried.json"]
    )
    assert json.loads((tmp_path / "tables" / "carried.json").read_text()) == {"source": None, "cells": []}
    md = (tmp_path / "tables" / "loglik.md").read_text()
    assert "## mnist: importance-sampled test log-likelihood (nats)" in md
    assert "| d | nvae | svae |" in md
    assert "| 5 | -106.00 ± 1.00 | -107.00 ± 1.00 |" in md
    csv = pd.read_csv(tmp_path / "tables" / "knn.csv")
    assert set(csv["metric"]) == {"knn_100", "knn_1000"}
    summary = json.loads((tmp_path / "tables" / "summary.json").read_text())
    assert summary["mnist"]["svae"]["d2"] == pytest.approx(
        {"loglik": -104.0, "cluster_acc": 0.6, "knn_100": 0.7, "knn_1000": 0.9}
    )
    assert summary["mnist"]["pca_gmm"]["d2"] == {"cluster_acc": 0.55}


def test_single_seed_shows_mean_only(tmp_path):
    write_tables([fake_run("digits", "ae", 2, 0, -50.0)], tmp_path)
    assert "| 2 | -50.00 |" in (tmp_path / "loglik.md").read_text()


def test_convergence_table_pairs_points_within_runs():
    from vaepriors.evaluation.tables import convergence_markdown, convergence_table

    def check(seed, base, gain, model="svae"):
        return {"dataset": "mnist", "model": model, "latent_dim": 10, "seed": seed,
                "loglik": {"mean": base + gain, "importance_samples": 5000, "n_test": 1000},
                "loglik_base": {"mean": base, "importance_samples": 500},
                "gain": {"mean": gain, "sem": 0.01}}

    # the gain is the check's own (same points), not the difference of the cell means
    table = convergence_table([check(0, -93.0, 0.4), check(1, -94.0, 0.6), check(0, -92.0, 0.2, "nvae")])
    assert list(table["model"]) == ["nvae", "svae"]  # registry order
    svae = table[table["model"] == "svae"].iloc[0]
    assert svae["n"] == 2 and svae["k"] == 500 and svae["k_check"] == 5000 and svae["n_test"] == 1000
    assert svae["gain"] == pytest.approx(0.5) and svae["gain_sd"] == pytest.approx(0.1414, abs=1e-3)
    text = convergence_markdown(table)
    assert "| mnist | svae | 10 | 2 | 1000 | -93.50 | -93.00 | +0.500 ± 0.141 |" in text


def test_carried_cells_fill_only_what_no_run_has(metrics, tmp_path):
    """An earlier publication's tables fill the (dataset, model, d) cells absent here, with their
    mean, sd and n as published; a cell a run here has is never taken from them."""
    from vaepriors.evaluation.tables import carried_sentence, convergence_table

    old = [fake_run("mnist", m, d, s, -90.0 - s) for m in ("nvae", "svae") for d in (5, 10) for s in (0, 1)]
    write_tables(old, tmp_path / "old")
    new = [r for r in metrics if r["dataset"] == "mnist" and not (r["model"] == "svae" and r["latent_dim"] == 5)]
    write_tables(new, tmp_path / "new", carry=tmp_path / "old")
    wide = pd.read_csv(tmp_path / "new" / "loglik.csv").set_index(["metric", "latent_dim"])
    # d = 10 (both families) and svae d = 5 come from the old tables; nvae d = 5 stays this run's
    assert wide.loc[("loglik", 10), "svae_mean"] == pytest.approx(-90.5)
    assert wide.loc[("loglik", 10), "nvae_n"] == 2
    assert wide.loc[("loglik", 5), "svae_mean"] == pytest.approx(-90.5)
    assert wide.loc[("loglik", 5), "nvae_mean"] == pytest.approx(-106.0)
    assert wide.loc[("loglik", 2), "svae_n"] == 3
    knn = pd.read_csv(tmp_path / "new" / "knn.csv").set_index(["metric", "latent_dim"])
    assert knn.loc[("knn_100", 10), "nvae_mean"] == pytest.approx(0.7)
    record = json.loads((tmp_path / "new" / "carried.json").read_text())
    cells = {(c["model"], c["latent_dim"], c["n"]) for c in record["cells"] if c["dataset"] == "mnist"}
    assert {("nvae", 10, 2), ("svae", 10, 2), ("svae", 5, 2)} <= cells
    assert ("nvae", 5, 2) not in cells and ("nvae", 5, 3) not in cells
    assert "mnist svae d = 5 (n = 2)" in carried_sentence(record)
    assert carried_sentence({"source": None, "cells": []}) == ""

    def check(seed, dim):
        return {"dataset": "mnist", "model": "svae", "latent_dim": dim, "seed": seed,
                "loglik": {"mean": -93.0, "importance_samples": 5000, "n_test": 1000},
                "loglik_base": {"mean": -93.4, "importance_samples": 500}, "gain": {"mean": 0.4}}

    convergence_table([check(0, 10), check(1, 10)]).to_csv(tmp_path / "old" / "loglik_convergence.csv", index=False)
    table = convergence_table([check(0, 40)], carry=tmp_path / "old").set_index("latent_dim")
    assert table.loc[10, "n"] == 2 and table.loc[40, "n"] == 1


def test_a_carried_folder_without_its_tables_is_named(metrics, tmp_path):
    from vaepriors.evaluation.tables import MetricsFileError

    with pytest.raises(MetricsFileError, match="nowhere/loglik.csv: not found"):
        write_tables(metrics, tmp_path / "new", carry=tmp_path / "nowhere")
    assert not (tmp_path / "new" / "loglik.csv").exists()  # nothing half-written
