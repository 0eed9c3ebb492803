# Ablation stage: each variant of `ablation.variants` trained and evaluated on the grid beside the
# baseline (the configuration itself), then one table and one figure of what each variant moves.
# Paths and the variant logic live in vaepriors.ablation; these rules only wire them.
VARIANT_RUNS = ABL.runs(config)


rule prepare_variant:
    input:
        raw=f"{RAW}/{{dataset}}",
    output:
        f"{PROCESSED}/ablation/{{variant}}/{{dataset}}.npz",
    params:
        paths=variant_data_flags(paths=True),
        values=variant_data_flags(paths=False),
    log:
        "results/logs/ablation/{variant}/prepare_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "python scripts/prepare.py --dataset {wildcards.dataset} --out {output} {params.paths} "
        "{params.values} 2> {log}"


rule train_variant:
    input:
        data=variant_data,
    output:
        model=f"{ABL.RUN_DIR}/model.pt",
        history=f"{ABL.RUN_DIR}/history.csv",
        config=f"{ABL.RUN_DIR}/config.json",
    params:
        settings=variant_settings("train"),
        seeds=lambda w, output: w.seed,
        run_dirs=lambda w, output: str(Path(output.model).parent),
    log:
        f"results/logs/ablation/{{variant}}/train/{RUN}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=2000,
        runtime=600,
    shell:
        TRAIN_SHELL


rule evaluate_variant:
    input:
        data=variant_data,
        model=f"{ABL.RUN_DIR}/model.pt",
    output:
        ABL.METRICS,
    params:
        settings=variant_settings("evaluate"),
    log:
        f"results/logs/ablation/{{variant}}/evaluate/{RUN}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["evaluate"]["threads"]
    resources:
        mem_mb=2000,
        runtime=120,
    shell:
        "python scripts/evaluate.py --data {input.data} --model {input.model} --out {output}"
        " --seed {wildcards.seed} --family {wildcards.model} --settings {params.settings:q}"
        " --threads {threads} 2> {log}"


rule ablation_table:
    input:
        script="scripts/ablation.py",
        metrics=runs(f"results/metrics/{RUN}.json"),
        histories=runs(f"results/models/{RUN}/history.csv"),
        variant_metrics=[ABL.metrics_path(*r) for r in VARIANT_RUNS],
        variant_histories=[f"{ABL.run_dir(*r)}/history.csv" for r in VARIANT_RUNS],
    output:
        csv="results/tables/ablation.csv",
        md="results/tables/ablation.md",
        png=report("results/figures/ablation_curves.png", caption="../report/ablation.rst",
                   category="7 Ablation", labels={"figure": "validation ELBO per variant"}),
        pdf="results/figures/ablation_curves.pdf",
    params:
        variants=[r[0] for r in VARIANT_RUNS],
        descriptions=values_json(ABL.describe(config)),
    log:
        "results/logs/ablation/table.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --metrics {input.metrics} --histories {input.histories}"
        " --variant-metrics {input.variant_metrics} --variant-histories {input.variant_histories}"
        " --variants {params.variants} --descriptions {params.descriptions:q}"
        " --out-csv {output.csv} --out-md {output.md} --out-png {output.png} 2> {log}"
