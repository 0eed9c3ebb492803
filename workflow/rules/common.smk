# Shared names and helpers. Rules only wire files to scripts; paths are built here once.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from vaepriors.config import to_flags  # noqa: E402
from vaepriors.figures import targets as T  # noqa: E402

RAW = config["data"]["raw_dir"]
PROCESSED = config["data"]["processed_dir"]

RUN = "{dataset}/{model}/d{dim}/s{seed}"

wildcard_constraints:
    dataset="[a-z_]+",
    model="nvae|svae|gmmvae|ae",
    dim=r"\d+",
    seed=r"\d+",


def flags(*sections):
    """The flags DVC's ${section} unpacking writes, so both engines call scripts identically."""
    return " ".join(to_flags(config[s]) for s in sections)


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
