# Does a powerful decoder make the prior irrelevant? (issue 25) Both parts are off unless
# configured: the circle toy's study when `circle` is among the datasets (its runs are the grid's),
# the decoder-capacity sweep when `decoder_sweep` names sizes (paths and logic in
# vaepriors.decoder_sweep). Target: `snakemake ... capacity`.
CIRCLE_RUNS = [r for r in T.grid(config) if r[0] == "circle"]
SWEEP_RUNS = DS.runs(config) if DS.sweep(config).get("sizes") else []



rule capacity:
    input:
        DS.targets(config),


if CIRCLE_RUNS:

    rule circle_study:
        input:
            script="scripts/circle_study.py",
            data=f"{PROCESSED}/circle.npz",
            models=[f"results/models/{ds}/{m}/d{d}/s{s}/model.pt" for ds, m, d, s in CIRCLE_RUNS],
            metrics=[f"results/metrics/{ds}/{m}/d{d}/s{s}.json" for ds, m, d, s in CIRCLE_RUNS],
        output:
            csv=DS.CIRCLE_OUTPUTS[0],
            md=DS.CIRCLE_OUTPUTS[1],
            png=report(DS.CIRCLE_OUTPUTS[2], caption="../report/circle.rst",
                       category="8 Decoder capacity", labels={"figure": "circle toy latent maps"}),
            pdf=DS.CIRCLE_OUTPUTS[3],
        log:
            "results/logs/capacity/circle_study.log",
        conda:
            "../envs/vaepriors.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "python {input.script} --data {input.data} --models {input.models}"
            " --metrics {input.metrics} --out-csv {output.csv} --out-md {output.md}"
            " --out-png {output.png} 2> {log}"


if SWEEP_RUNS:

    wildcard_constraints:
        size="[A-Za-z0-9_-]+",

    rule train_sweep:
        input:
            data=f"{PROCESSED}/{{dataset}}.npz",
        output:
            model=f"{DS.RUN_DIR}/model.pt",
            history=f"{DS.RUN_DIR}/history.csv",
            config=f"{DS.RUN_DIR}/config.json",
        params:
            settings=SWEEP_TRAIN,
            seeds=lambda w, output: w.seed,
            run_dirs=lambda w, output: str(Path(output.model).parent),
        log:
            f"results/logs/decoder_sweep/{{size}}/train/{RUN}.log",
        conda:
            "../envs/vaepriors.yaml"
        threads: config["train"]["threads"]
        resources:
            mem_mb=2000,
            runtime=600,
        shell:
            TRAIN_SHELL

    rule evaluate_sweep:
        input:
            data=f"{PROCESSED}/{{dataset}}.npz",
            model=f"{DS.RUN_DIR}/model.pt",
        output:
            DS.METRICS,
        params:
            settings=lambda w: values_json(run_values(SIZE_CONFIGS[w.size], "evaluate", w.model)),
        log:
            f"results/logs/decoder_sweep/{{size}}/evaluate/{RUN}.log",
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

    rule decoder_sweep_table:
        input:
            script="scripts/decoder_sweep.py",
            metrics=[DS.metrics_path(*r) for r in SWEEP_RUNS],
            models=[f"{DS.run_dir(*r)}/model.pt" for r in SWEEP_RUNS],
        output:
            csv=DS.OUTPUTS[0],
            md=DS.OUTPUTS[1],
            png=report(DS.OUTPUTS[2], caption="../report/decoder_sweep.rst",
                       category="8 Decoder capacity", labels={"figure": "test LL vs decoder parameters"}),
            pdf=DS.OUTPUTS[3],
        params:
            sizes=[r[0] for r in SWEEP_RUNS],
            budget=DS.sweep(config).get("budget", ""),
        log:
            "results/logs/decoder_sweep/table.log",
        conda:
            "../envs/vaepriors.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        shell:
            "python {input.script} --metrics {input.metrics} --models {input.models}"
            " --sizes {params.sizes} --budget {params.budget:q} --out-csv {output.csv}"
            " --out-md {output.md} --out-png {output.png} 2> {log}"
