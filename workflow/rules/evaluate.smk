# Evaluation stage: per-run metrics, dataset reference rows, aggregate tables.


rule evaluate:
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
        model=f"results/models/{RUN}/model.pt",
    output:
        f"results/metrics/{RUN}.json",
    params:
        settings=settings("evaluate"),
    log:
        f"results/logs/evaluate/{RUN}.log",
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


rule reference_clustering:
    input:
        script="scripts/reference_clustering.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        "results/metrics/{dataset}/references.json",
    params:
        flags=flags("evaluate"),
    log:
        "results/logs/evaluate/{dataset}_references.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["evaluate"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "python {input.script} --data {input.data} --dataset {wildcards.dataset} --out {output}"
        " {params.flags} 2> {log}"


rule aggregate:
    input:
        script="scripts/aggregate.py",
        metrics=runs(f"results/metrics/{RUN}.json"),
        references=expand("results/metrics/{dataset}/references.json", dataset=config["datasets"]),
        carried=T.carried_inputs(config, ["loglik", "clustering", "knn"]),
    output:
        loglik="results/tables/loglik.csv",
        clustering="results/tables/clustering.csv",
        knn="results/tables/knn.csv",
        loglik_md="results/tables/loglik.md",
        clustering_md="results/tables/clustering.md",
        knn_md="results/tables/knn.md",
        summary="results/tables/summary.json",
        carried="results/tables/carried.json",
    params:
        carry=T.carry_flag(config),
    log:
        "results/logs/aggregate.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --metrics {input.metrics} --references {input.references}"
        " --out-dir results/tables{params.carry} 2> {log}"


# Our tables beside published numbers (workflow/references/): the replication verdict.
rule paper_comparison:
    input:
        script="scripts/compare_paper.py",
        tables=["results/tables/loglik.csv", "results/tables/clustering.csv",
                "results/tables/knn.csv"],
        references="workflow/references/tables",
        protocols="workflow/references/protocols",
        configs=runs(f"results/models/{RUN}/config.json"),
        carried="results/tables/carried.json",
    output:
        csv="results/tables/paper_comparison.csv",
        md="results/tables/paper_comparison.md",
        pattern="results/tables/paper_pattern.csv",
        budget="results/tables/paper_budget.json",
    params:
        importance_samples=config["evaluate"]["importance_samples"],
    log:
        "results/logs/paper_comparison.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --tables {input.tables} --references {input.references}"
        " --protocols {input.protocols} --run-configs {input.configs}"
        " --importance-samples {params.importance_samples} --carried {input.carried}"
        " --out-dir results/tables 2> {log}"


# How far the evaluation's K is from converged (optional keys convergence_samples, and
# convergence_points to use the first test points only): every run at both K on the same points.
if config.get("convergence_samples"):

    rule loglik_check:
        input:
            data=f"{PROCESSED}/{{dataset}}.npz",
            model=f"results/models/{RUN}/model.pt",
        output:
            f"results/convergence/{RUN}.json",
        params:
            settings=settings("evaluate"),
            samples=config["convergence_samples"],
            points=f" --test-points {config['convergence_points']}" if config.get("convergence_points") else "",
        log:
            f"results/logs/convergence/{RUN}.log",
        conda:
            "../envs/vaepriors.yaml"
        threads: config["evaluate"]["threads"]
        resources:
            mem_mb=2000,
            runtime=600,
        shell:
            "python scripts/loglik_check.py --data {input.data} --model {input.model} --out {output}"
            " --seed {wildcards.seed} --family {wildcards.model} --importance-samples {params.samples}{params.points}"
            " --settings {params.settings:q} --threads {threads} 2> {log}"

    rule loglik_convergence:
        input:
            script="scripts/convergence_table.py",
            checks=runs(f"results/convergence/{RUN}.json"),
            carried=T.carried_inputs(config, ["loglik_convergence"]),
        output:
            csv="results/tables/loglik_convergence.csv",
            md="results/tables/loglik_convergence.md",
        params:
            carry=T.carry_flag(config),
        log:
            "results/logs/convergence/table.log",
        conda:
            "../envs/vaepriors.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        shell:
            "python {input.script} --checks {input.checks}"
            " --out-csv {output.csv} --out-md {output.md}{params.carry} 2> {log}"
