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
