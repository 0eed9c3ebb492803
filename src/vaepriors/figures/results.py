"""Figures 1 and 2: test log-likelihood and clustering scores against latent dimension.

Both read the aggregate tables of the evaluation stage (results/tables/{loglik,clustering}.csv,
layout documented in vaepriors.evaluation.tables): rows (dataset, metric, latent_dim), columns
{model}_mean, {model}_sd, {model}_n, with sd the sample standard deviation over seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import style

REFERENCE_MODELS = {"pixel_kmeans": "k-means on pixels", "pca_gmm": "GMM on 10 PCA components"}


def table_models(wide: pd.DataFrame) -> list[str]:
    return [c[: -len("_mean")] for c in wide.columns if c.endswith("_mean")]


def _dodge(dims: np.ndarray, i: int, n: int, spread: float = 0.035) -> np.ndarray:
    """Shift model i of n sideways on the log axis so error bars do not overlap."""
    return dims * np.exp(spread * (i - (n - 1) / 2))


def _errorbar(ax, block: pd.DataFrame, model: str, i: int, n: int) -> None:
    rows = block.dropna(subset=[f"{model}_mean"]).sort_values("latent_dim")
    if rows.empty:
        return
    dims = rows["latent_dim"].to_numpy(float)
    sd = rows[f"{model}_sd"].to_numpy(float)
    ax.errorbar(_dodge(dims, i, n), rows[f"{model}_mean"], yerr=np.where(np.isnan(sd), 0, sd),
                **style.model_style(model))


def plot_loglik(wide: pd.DataFrame, out: str | Path, metric: str = "loglik",
                references: pd.DataFrame | None = None, note: str = "") -> list[Path]:
    """One panel per dataset: mean test log p(x) (nats) against d, error bars = sd over seeds.
    ``references`` (vaepriors.evaluation.replication.load_references) adds the published points
    of the same dataset, model and metric as open grey markers; ``note`` goes under the panels
    (e.g. that the run used a smaller budget than the paper)."""
    wide = wide[wide["metric"] == metric]
    datasets = list(dict.fromkeys(wide["dataset"]))
    models = style.ordered_models(m for m in table_models(wide) if m not in REFERENCE_MODELS)
    fig, axes = style.figure(1, max(len(datasets), 1), panel=(3.6, 3.0))
    for ax, dataset in zip(axes[0], datasets):
        block = wide[wide["dataset"] == dataset]
        for i, model in enumerate(models):
            _errorbar(ax, block, model, i, len(models))
        if references is not None:
            _paper_points(ax, references, dataset, metric, models, set(block["latent_dim"]))
        style.latent_dim_axis(ax, block["latent_dim"])
        ax.set_ylabel("test log-likelihood log p(x) (nats)")
        ax.set_title(style.dataset_label(dataset))
    if note:
        fig.suptitle(note, fontsize="small", wrap=True)
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=4)
    return style.save(fig, out)


def _paper_points(ax, refs: pd.DataFrame, dataset: str, metric: str, models: list[str],
                  dims: set) -> None:
    rows = refs[(refs["dataset"] == dataset) & (refs["metric"] == metric)
                & refs["latent_dim"].isin(dims) & refs["model"].isin(models)]
    for (source, model), part in rows.groupby(["source", "model"], sort=False):
        part = part.sort_values("latent_dim")
        ax.plot(part["latent_dim"], part["value"], linestyle="none",
                marker=style.MARKERS.get(model, "x"), markerfacecolor="none", markeredgecolor="#777777",
                markersize=7, label=f"{style.model_label(model)}, {source}")


CLUSTER_METRICS = {"cluster_acc": "accuracy (Hungarian)", "cluster_nmi": "NMI", "cluster_ari": "ARI"}


def plot_clustering(wide: pd.DataFrame, out: str | Path) -> list[Path]:
    """Rows = datasets, columns = accuracy / NMI / ARI; one line per model against d with sd
    error bars; the no-VAE reference rows as horizontal lines."""
    datasets = list(dict.fromkeys(wide["dataset"]))
    metrics = [m for m in CLUSTER_METRICS if m in set(wide["metric"])]
    models = [m for m in table_models(wide) if m not in REFERENCE_MODELS]
    models = style.ordered_models(models)
    refs = [m for m in REFERENCE_MODELS if m in table_models(wide)]
    fig, axes = style.figure(max(len(datasets), 1), max(len(metrics), 1), panel=(3.0, 2.6))
    for r, dataset in enumerate(datasets):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            block = wide[(wide["dataset"] == dataset) & (wide["metric"] == metric)]
            for i, model in enumerate(models):
                _errorbar(ax, block, model, i, len(models))
            for j, ref in enumerate(refs):
                values = block[f"{ref}_mean"].dropna()
                if len(values):
                    ax.axhline(float(values.mean()), label=REFERENCE_MODELS[ref],
                               **style.REFERENCE_STYLES[j % len(style.REFERENCE_STYLES)])
            style.latent_dim_axis(ax, block["latent_dim"])
            ax.set_ylabel(f"test {CLUSTER_METRICS[metric]} (0-1)")
            ax.set_title(f"{style.dataset_label(dataset)}: {CLUSTER_METRICS[metric]}")
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=3)
    return style.save(fig, out)
