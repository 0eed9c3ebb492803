# vaepriors: why is the VAE latent prior Gaussian? One DAG from raw data to figures.
# Run: snakemake --cores all            (full grid from params.yaml)
#      snakemake --cores 2 --configfile profiles/quick/params.yaml   (quick profile)
import importlib.util
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# Rules run `python scripts/...`. Without a deployment method (--sdm conda, ...) that is the Python
# running Snakemake (e.g. .venv/bin/snakemake -> .venv/bin/python, activated or not), which must
# have the package: checked here, before any job, rather than as a ModuleNotFoundError in each job.
if not getattr(workflow.deployment_settings, "deployment_method", None):
    if importlib.util.find_spec("vaepriors") is None:
        raise WorkflowError(
            f"the package vaepriors is not installed for {sys.executable}, the Python that runs "
            "Snakemake and every job's `python`. Run Snakemake from the project's environment: "
            "`make setup`, then `.venv/bin/snakemake ...` (or `source .venv/bin/activate` first)."
        )
    # Set, not read: nothing for the linter's envvars directive to assert.
    os.environ.update(PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from vaepriors.config import ConfigError, apply_overrides, check_paths, fill_defaults, load_schema  # noqa: E402
from vaepriors.config import load_yaml  # noqa: E402
from vaepriors.config import validate as validate_params  # noqa: E402

try:
    load_yaml("params.yaml")  # a syntax error named with its line (the directive's message has none)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


configfile: "params.yaml"


try:
    # --config values arrive untyped inside lists and mappings (seeds='[0,1]' -> ['0', '1']).
    apply_overrides(config, workflow.config_settings.config)
    where = "params.yaml with --configfile/--config overrides"
    validate_params(config, load_schema(), where=where)
    check_paths(config, load_schema(), where=where)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
fill_defaults(config, load_schema())

# A GPU is checked where the jobs run: here, unless an executor (SLURM) sends them elsewhere.
if config["train"]["device"] == "cuda" and workflow.local_exec:
    import torch

    if not torch.cuda.is_available():
        raise WorkflowError(
            "train.device: 'cuda', but torch sees no CUDA device on this machine "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
            "Set train.device to auto (CUDA where present, else CPU) or cpu, "
            "e.g. --config 'train={device: auto}'."
        )


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/ablation.smk"
include: "workflow/rules/semisup.smk"
include: "workflow/rules/capacity.smk"


rule all:
    input:
        all_targets(),
    default_target: True
