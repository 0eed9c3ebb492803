"""File names of the figures stage, for workflow/rules/figures.smk (kept here so the Snakefile
holds rules only). Every function takes the Snakemake ``config`` dict; nothing heavy is imported."""

from __future__ import annotations

from itertools import product

FIG = "results/figures"
STUDIES = "results/studies"
TABLES = "results/tables"


def fig_pair(stem: str) -> list[str]:
    """The PNG (shown in the report) and the PDF of one figure."""
    return [f"{stem}.png", f"{stem}.pdf"]


def first_seed(config: dict) -> int:
    return config["seeds"][0]


def max_dim(config: dict) -> int:
    return max(config["latent_dims"])


def run_files(config: dict, dataset: str, name: str = "model.pt", models=None, dims=None,
              seeds=None) -> list[str]:
    """results/models/{dataset}/{model}/d{dim}/s{seed}/{name} for the selected runs."""
    return [f"results/models/{dataset}/{m}/d{d}/s{s}/{name}"
            for m, d, s in product(models or config["models"], dims or config["latent_dims"],
                                   seeds or config["seeds"])]


def density_models(config: dict) -> list[str]:
    """The configured families whose ex-post density is studied (``ex_post_density``: the AE)."""
    from .. import families

    return [m for m in config["models"] if families.get(m).ex_post_density]


def has_density_study(config: dict) -> bool:
    return bool(density_models(config))


def figure_targets(config: dict) -> list[str]:
    targets = [*fig_pair(f"{FIG}/loglik"), *fig_pair(f"{FIG}/clustering"),
               *fig_pair(f"{FIG}/sample_quality"),
               f"{TABLES}/sample_quality.csv", f"{TABLES}/sample_quality.md"]
    for ds in config["datasets"]:
        targets += fig_pair(f"{FIG}/{ds}/samples")
        targets += fig_pair(f"{FIG}/{ds}/reconstructions")
        targets += fig_pair(f"{FIG}/{ds}/training_curves")
        if 2 in config["latent_dims"]:
            targets += fig_pair(f"{FIG}/{ds}/latent_maps")
        if has_density_study(config):
            targets += fig_pair(f"{FIG}/{ds}/ae_density")
            targets += [f"{TABLES}/ae_density_{ds}.csv", f"{TABLES}/ae_density_{ds}.md"]
        for kind in ("trained", "init", "gain"):
            targets += fig_pair(f"{FIG}/{ds}/weights_{kind}")
        targets += [f"{TABLES}/weights_{ds}.csv", f"{TABLES}/weights_{ds}.md"]
    targets.append("results/summary.md")
    return targets


def summary_figures(config: dict) -> list[str]:
    return [t for t in figure_targets(config) if t.endswith(".png")]


def summary_density(config: dict) -> list[str]:
    if not has_density_study(config):
        return []
    return [f"{TABLES}/ae_density_{ds}.csv" for ds in config["datasets"]]


def summary_weights(config: dict) -> list[str]:
    return [f"{TABLES}/weights_{ds}.csv" for ds in config["datasets"]]


def summary_tables_md(config: dict) -> list[str]:
    """Markdown tables of this stage. The evaluation tables' .md files are read next to their
    .csv inputs by scripts/figures/summary.py (rule aggregate declares the CSVs and the .md tables)."""
    tables = [f"{TABLES}/sample_quality.md"]
    tables += [p.replace(".csv", ".md") for p in summary_weights(config) + summary_density(config)]
    return tables


def per_dataset(config: dict, pattern: str) -> list[str]:
    return [pattern.format(dataset=ds) for ds in config["datasets"]]
