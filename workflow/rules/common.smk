# Shared names and helpers. Rules only wire files to scripts; paths are built here once.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from vaepriors import ablation as ABL  # noqa: E402
from vaepriors import decoder_sweep as DS  # noqa: E402
from vaepriors import families  # noqa: E402
from vaepriors.config import load_schema, path_keys, run_values, to_flags, values_json  # noqa: E402
from vaepriors.config import validate as validate_families  # noqa: E402
from vaepriors.figures import targets as T  # noqa: E402

# The Snakefile's validate() reads the schema file, whose family enum is left to the registry:
# check config["models"] against the registered families (plugins included) here.
validate_families(config, load_schema(), where="the Snakemake configuration")
ABL.check(config)  # every ablation variant merges into a valid configuration and changes something

RAW = config["data"]["raw_dir"]
PROCESSED = config["data"]["processed_dir"]

RUN = "{dataset}/{model}/d{dim}/s{seed}"

wildcard_constraints:
    dataset="[a-z_]+",
    model="|".join(families.names()),
    dim=r"\d+",
    seed=r"\d+",


def flags(*sections):
    """The flags DVC's ${section} unpacking writes, so both engines call scripts identically."""
    return " ".join(to_flags(config[s]) for s in sections)


def unchecked(text):
    """A param from a function of ``output``, which Snakemake leaves out of its rerun check: for
    where a job's files are, not what it computes."""
    return lambda w, output: text


def data_flags(paths, cfg=None):
    """The flags of the data section's path keys (``paths``) or of its other keys."""
    keys = path_keys("data")
    return to_flags({k: v for k, v in (cfg or config)["data"].items() if (k in keys) == paths})


def settings(stage, cfg=None):
    """Params of a per-run rule: the JSON of the values the run uses (vaepriors.config.run_values),
    so a run is redone when one of them changes, not when an unrelated key is added."""
    return lambda w: values_json(run_values(cfg or config, stage, w.model))


def variant_settings(stage):
    """settings() for a run of an ablation variant: its values under the variant's configuration."""
    return lambda w: values_json(run_values(ABL.variant_config(config, w.variant), stage, w.model))


def variant_data_flags(paths):
    """data_flags() of a variant's configuration (its path keys unchecked, as for prepare)."""
    if paths:
        return lambda w, output: data_flags(True, ABL.variant_config(config, w.variant))
    return lambda w: data_flags(False, ABL.variant_config(config, w.variant))


def variant_data(w):
    """The prepared data of a variant run: the variant's own file where it changes the data."""
    return ABL.data_path(config, w.variant, w.dataset)


def runs(pattern):
    """The pattern for every run of the grid (latent_dims_by_model may drop some products)."""
    return [pattern.format(dataset=ds, model=m, dim=d, seed=s) for ds, m, d, s in T.grid(config)]


def all_targets():
    targets = [
        "results/tables/loglik.csv",
        "results/tables/clustering.csv",
        "results/tables/knn.csv",
        "results/tables/summary.json",
        "results/tables/paper_comparison.csv",
        "results/tables/paper_comparison.md",
    ]
    targets += figure_targets()
    return targets
