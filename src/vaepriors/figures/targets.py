"""File names of the figures stage, for workflow/rules/figures.smk (kept here so the Snakefile
holds rules only). Every function takes the Snakemake ``config`` dict; nothing heavy is imported."""

from __future__ import annotations

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


def dims_of(config: dict, model: str) -> list[int]:
    """The latent dims a model is trained at: latent_dims, or its latent_dims_by_model entry."""
    dims = config.get("latent_dims_by_model", {}).get(model, config["latent_dims"])
    stray = sorted(set(dims) - set(config["latent_dims"]))
    if stray:
        raise ValueError(f"latent_dims_by_model.{model}: {stray} not in latent_dims "
                         f"{config['latent_dims']}")
    return [d for d in config["latent_dims"] if d in dims]


def grid(config: dict) -> list[tuple[str, str, int, int]]:
    """Every run (dataset, model, dim, seed) of the configuration, in expand()'s order."""
    return [(ds, m, d, s) for ds in config["datasets"] for m in config["models"]
            for d in dims_of(config, m) for s in config["seeds"]]


def run_files(config: dict, dataset: str, name: str = "model.pt", models=None, dims=None,
              seeds=None) -> list[str]:
    """results/models/{dataset}/{model}/d{dim}/s{seed}/{name} for the selected runs that the
    grid holds."""
    wanted = None if dims is None else {int(d) for d in dims}  # wildcards arrive as strings
    return [f"results/models/{dataset}/{m}/d{d}/s{s}/{name}"
            for m in (models or config["models"]) for d in dims_of(config, m)
            if wanted is None or d in wanted for s in (seeds or config["seeds"])]


def density_models(config: dict) -> list[str]:
    """The configured families whose ex-post density is studied (``ex_post_density``: the AE)."""
    from .. import families

    return [m for m in config["models"] if families.get(m).ex_post_density]


def has_density_study(config: dict) -> bool:
    return bool(density_models(config))


def density_dims(config: dict) -> list[int]:
    """The latent dims at which some family of the ex-post density study was trained."""
    dims = {d for m in density_models(config) for d in dims_of(config, m)}
    return [d for d in config["latent_dims"] if d in dims]


def has_spherical_study(config: dict) -> bool:
    """The stability and speed study of the spherical posteriors, when a family on the sphere runs."""
    from .. import families

    return any(families.get(m).sphere for m in config["models"])


SPHERICAL = "spherical_stability"


def spherical_tables(config: dict) -> list[str]:
    return [f"{TABLES}/{SPHERICAL}.csv"] if has_spherical_study(config) else []


def ablation_outputs(config: dict) -> list[str]:
    """The ablation's table and figure, when ablation.variants names any (vaepriors.ablation)."""
    if not config.get("ablation", {}).get("variants"):
        return []
    return [f"{TABLES}/ablation.csv", f"{TABLES}/ablation.md", *fig_pair(f"{FIG}/ablation_curves")]


def convergence_outputs(config: dict) -> list[str]:
    """The log-likelihood at convergence_samples beside evaluate.importance_samples (optional)."""
    if not config.get("convergence_samples"):
        return []
    return [f"{TABLES}/loglik_convergence.csv", f"{TABLES}/loglik_convergence.md"]


def semisup_outputs(config: dict) -> list[str]:
    """The semi-supervised study's table and figure (vaepriors.semisup)."""
    from .. import semisup

    return semisup.outputs(config)


def capacity_outputs(config: dict) -> list[str]:
    """The circle toy's study and the decoder sweep, each where configured (vaepriors.decoder_sweep)."""
    from .. import decoder_sweep

    return decoder_sweep.targets(config)


def has_latent_maps(config: dict) -> bool:
    return any(2 in dims_of(config, m) for m in config["models"])


def figure_targets(config: dict) -> list[str]:
    targets = [*fig_pair(f"{FIG}/loglik"), *fig_pair(f"{FIG}/clustering"),
               *fig_pair(f"{FIG}/sample_quality"),
               f"{TABLES}/sample_quality.csv", f"{TABLES}/sample_quality.md"]
    if has_spherical_study(config):
        targets += [*fig_pair(f"{FIG}/{SPHERICAL}"), f"{TABLES}/{SPHERICAL}.csv", f"{TABLES}/{SPHERICAL}.md"]
    for ds in config["datasets"]:
        targets += fig_pair(f"{FIG}/{ds}/samples")
        targets += fig_pair(f"{FIG}/{ds}/reconstructions")
        targets += fig_pair(f"{FIG}/{ds}/training_curves")
        if has_latent_maps(config):
            targets += fig_pair(f"{FIG}/{ds}/latent_maps")
        if has_density_study(config):
            targets += fig_pair(f"{FIG}/{ds}/ae_density")
            targets += [f"{TABLES}/ae_density_{ds}.csv", f"{TABLES}/ae_density_{ds}.md"]
        for kind in ("trained", "init", "gain"):
            targets += fig_pair(f"{FIG}/{ds}/weights_{kind}")
        targets += [f"{TABLES}/weights_{ds}.csv", f"{TABLES}/weights_{ds}.md"]
    targets += (semisup_outputs(config) + ablation_outputs(config) + convergence_outputs(config)
                + capacity_outputs(config))
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
    tables += [p.replace(".csv", ".md")
               for p in summary_weights(config) + summary_density(config) + spherical_tables(config)]
    tables += [p for p in semisup_outputs(config) + ablation_outputs(config) + convergence_outputs(config)
               + capacity_outputs(config) if p.endswith(".md")]
    return tables


def per_dataset(config: dict, pattern: str) -> list[str]:
    return [pattern.format(dataset=ds) for ds in config["datasets"]]


def carried_inputs(config: dict, tables: list[str]) -> list[str]:
    """The carried publication's tables (config key carry_tables) that a rule reads, if any."""
    carry = config.get("carry_tables")
    return [f"{carry}/{t}.csv" for t in tables] if carry else []


def carry_flag(config: dict) -> str:
    carry = config.get("carry_tables")
    return f" --carry {carry}" if carry else ""
