# Training stage: one run per (dataset, model, latent dim, seed).


rule train:
    input:
        script="scripts/train.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        model=f"results/models/{RUN}/model.pt",
        history=f"results/models/{RUN}/history.csv",
        config=f"results/models/{RUN}/config.json",
    params:
        flags=flags("train", "model"),
        run_dir=lambda w, output: str(Path(output.model).parent),
    log:
        f"results/logs/train/{RUN}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
        runtime=600,
    shell:
        "python {input.script} --data {input.data} --out-dir {params.run_dir}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --latent-dim {wildcards.dim}"
        " --seed {wildcards.seed} {params.flags} 2> {log}"


# Several seeds per job (train.seeds_per_job > 1): one rule per group of consecutive seeds of
# config["seeds"], trained together in one process (stacked; each seed as it would train alone).
# Its outputs are the per-seed files of `train`, and the ruleorder below makes the DAG take it.
SEEDS_PER_JOB = config["train"]["seeds_per_job"]
SEED_GROUPS = (
    [config["seeds"][i : i + SEEDS_PER_JOB] for i in range(0, len(config["seeds"]), SEEDS_PER_JOB)]
    if SEEDS_PER_JOB > 1
    else []
)
GROUP_RUN = "results/models/{{dataset}}/{{model}}/d{{dim}}/s{seed}"

for _seeds in SEED_GROUPS:

    rule:
        name:
            f"train_seeds_{_seeds[0]}_{_seeds[-1]}"
        input:
            script="scripts/train.py",
            data=f"{PROCESSED}/{{dataset}}.npz",
        output:
            model=expand(f"{GROUP_RUN}/model.pt", seed=_seeds),
            history=expand(f"{GROUP_RUN}/history.csv", seed=_seeds),
            config=expand(f"{GROUP_RUN}/config.json", seed=_seeds),
        params:
            flags=flags("train", "model"),
            seeds=" ".join(map(str, _seeds)),
            run_dirs=lambda w, output: " ".join(str(Path(p).parent) for p in output.model),
        log:
            f"results/logs/train/{{dataset}}/{{model}}/d{{dim}}/s{_seeds[0]}-{_seeds[-1]}.log",
        conda:
            "../envs/vaepriors.yaml"
        threads: config["train"]["threads"]
        resources:
            mem_mb=2000 + 200 * len(_seeds),
            runtime=600 * len(_seeds),
        shell:
            "python {input.script} --data {input.data} --out-dirs {params.run_dirs}"
            " --dataset {wildcards.dataset} --model {wildcards.model} --latent-dim {wildcards.dim}"
            " --seeds {params.seeds} {params.flags} 2> {log}"

    workflow.ruleorder(f"train_seeds_{_seeds[0]}_{_seeds[-1]}", "train")
