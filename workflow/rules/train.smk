# Training stage: one run per (dataset, model, latent dim, seed). The script is not an input and
# the params are the run's own values: a run is redone when a value it uses changes, not when
# the code is refactored or an unrelated key is added.

# One command for a run alone and for a group of seeds: Snakemake's rerun check compares it.
TRAIN_SHELL = (
    "python scripts/train.py --data {input.data} --out-dirs {params.run_dirs}"
    " --dataset {wildcards.dataset} --model {wildcards.model} --latent-dim {wildcards.dim}"
    " --seeds {params.seeds} --settings {params.settings:q} --threads {threads} 2> {log}"
)


rule train:
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        model=f"results/models/{RUN}/model.pt",
        history=f"results/models/{RUN}/history.csv",
        config=f"results/models/{RUN}/config.json",
    params:
        settings=settings("train"),
        # from the outputs (Snakemake leaves such params out of its rerun check): a run trained
        # in a group of seeds or alone is the same run
        seeds=lambda w, output: w.seed,
        run_dirs=lambda w, output: str(Path(output.model).parent),
    log:
        f"results/logs/train/{RUN}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
        runtime=600,
    shell:
        TRAIN_SHELL


# Several seeds per job (train.seeds_per_job > 1): one rule per group of consecutive seeds of
# config["seeds"], trained together in one process (stacked; each seed as it would train alone).
# Its outputs are the per-seed files of `train` (and of `train_sweep`, for the decoder sweep's
# runs, each size with its own values), and the ruleorder below makes the DAG take it.
SEEDS_PER_JOB = config["train"]["seeds_per_job"]
SEED_GROUPS = (
    [config["seeds"][i : i + SEEDS_PER_JOB] for i in range(0, len(config["seeds"]), SEEDS_PER_JOB)]
    if SEEDS_PER_JOB > 1
    else []
)
# the decoder sweep's sizes, each a whole configuration, merged and validated once
SIZE_CONFIGS = {size: DS.size_config(config, size) for size in DS.sweep(config).get("sizes", {})}
SWEEP_TRAIN = lambda w: values_json(run_values(SIZE_CONFIGS[w.size], "train", w.model))  # noqa: E731
# rule-name prefix -> (run directory pattern, per-seed rule, values of a run, log directory)
GROUPED = {"train": ("results/models/{dataset}/{model}/d{dim}/s{seed}", "train", settings("train"),
                     "results/logs/train/{dataset}/{model}/d{dim}")}
if SIZE_CONFIGS:
    GROUPED["train_sweep"] = (DS.RUN_DIR, "train_sweep", SWEEP_TRAIN,
                              "results/logs/decoder_sweep/{size}/train/{dataset}/{model}/d{dim}")

for _prefix, (_run, _single, _settings, _logs) in GROUPED.items():
    _group_run = _run.replace("{", "{{").replace("}", "}}").replace("{{seed}}", "{seed}")
    for _seeds in SEED_GROUPS:

        rule:
            name:
                f"{_prefix}_seeds_{_seeds[0]}_{_seeds[-1]}"
            input:
                data=f"{PROCESSED}/{{dataset}}.npz",
            output:
                model=expand(f"{_group_run}/model.pt", seed=_seeds),
                history=expand(f"{_group_run}/history.csv", seed=_seeds),
                config=expand(f"{_group_run}/config.json", seed=_seeds),
            params:
                settings=_settings,
                seeds=lambda w, output, s=_seeds: " ".join(map(str, s)),
                run_dirs=lambda w, output: " ".join(str(Path(p).parent) for p in output.model),
            log:
                f"{_logs}/s{_seeds[0]}-{_seeds[-1]}.log",
            conda:
                "../envs/vaepriors.yaml"
            threads: config["train"]["threads"]
            resources:
                mem_mb=2000 + 200 * len(_seeds),
                runtime=600 * len(_seeds),
            shell:
                TRAIN_SHELL

        workflow.ruleorder(f"{_prefix}_seeds_{_seeds[0]}_{_seeds[-1]}", _single)
