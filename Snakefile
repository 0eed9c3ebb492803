# vaepriors: why is the VAE latent prior Gaussian? One DAG from raw data to figures.
# Run: snakemake --cores all            (full grid from params.yaml)
#      snakemake --cores 2 --configfile profiles/quick/params.yaml   (quick profile)
from snakemake.utils import min_version, validate

min_version("9.0")

configfile: "params.yaml"


validate(config, "workflow/schemas/params.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        all_targets(),
    default_target: True
