# Figures stage: built from the aggregate tables, trained models and histories.
# Every figure is written as PNG (in the report) and PDF; library code in src/vaepriors/figures
# (file names in vaepriors.figures.targets), thin CLIs in scripts/figures, captions in
# workflow/report.
FIG = T.FIG
STUDIES = T.STUDIES
FIG_SCRIPTS = "scripts/figures"
FIRST_SEED = T.first_seed(config)
MAX_DIM = T.max_dim(config)

# Used by rule all (common.smk).
figure_targets = lambda: T.figure_targets(config)


report: "../report/workflow.rst"


rule feature_classifier:
    input:
        script=f"{FIG_SCRIPTS}/classifier.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        model="results/classifier/{dataset}.pt",
        info="results/classifier/{dataset}.json",
    params:
        flags=flags("figures"),
    log:
        "results/logs/figures/classifier_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["figures"]["threads"]
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python {input.script} --data {input.data} --out-model {output.model}"
        " --out-json {output.info} {params.flags} 2> {log}"


rule sample_quality:
    input:
        script=f"{FIG_SCRIPTS}/sample_quality.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
        classifier="results/classifier/{dataset}.pt",
        models=lambda w: T.run_files(config, w.dataset),
    output:
        f"{STUDIES}/{{dataset}}/sample_quality.csv",
    params:
        flags=flags("figures"),
    log:
        "results/logs/figures/sample_quality_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["figures"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "python {input.script} --data {input.data} --classifier {input.classifier}"
        " --models {input.models} --out {output} {params.flags} 2> {log}"


rule figure_sample_quality:
    input:
        script=f"{FIG_SCRIPTS}/plot_sample_quality.py",
        tables=expand(f"{STUDIES}/{{dataset}}/sample_quality.csv", dataset=config["datasets"]),
        classifiers=expand("results/classifier/{dataset}.json", dataset=config["datasets"]),
    output:
        png=report(f"{FIG}/sample_quality.png", caption="../report/sample_quality.rst",
                   category="6 Sample quality", labels={"figure": "FD vs latent dim"}),
        pdf=f"{FIG}/sample_quality.pdf",
        csv="results/tables/sample_quality.csv",
        md="results/tables/sample_quality.md",
    log:
        "results/logs/figures/sample_quality.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --tables {input.tables} --classifiers {input.classifiers}"
        " --out {output.png} --out-csv {output.csv} --out-md {output.md} 2> {log}"


rule spherical_study:
    input:
        script=f"{FIG_SCRIPTS}/spherical_study.py",
    output:
        png=report(f"{FIG}/{T.SPHERICAL}.png", caption="../report/spherical_stability.rst",
                   category="10 Spherical posteriors", labels={"figure": "stability and speed"}),
        pdf=f"{FIG}/{T.SPHERICAL}.pdf",
        csv=f"results/tables/{T.SPHERICAL}.csv",
        md=f"results/tables/{T.SPHERICAL}.md",
    log:
        f"results/logs/figures/{T.SPHERICAL}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --out {output.png} --out-csv {output.csv} --out-md {output.md} 2> {log}"


rule figure_loglik:
    input:
        script=f"{FIG_SCRIPTS}/results_figures.py",
        table="results/tables/loglik.csv",
        references="workflow/references/tables",
        budget="results/tables/paper_budget.json",
    output:
        png=report(f"{FIG}/loglik.png", caption="../report/loglik.rst",
                   category="1 Log-likelihood", labels={"figure": "test log-likelihood vs d"}),
        pdf=f"{FIG}/loglik.pdf",
    log:
        "results/logs/figures/loglik.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --kind loglik --table {input.table} --out {output.png}"
        " --references {input.references} --budget {input.budget} 2> {log}"


rule figure_clustering:
    input:
        script=f"{FIG_SCRIPTS}/results_figures.py",
        table="results/tables/clustering.csv",
    output:
        png=report(f"{FIG}/clustering.png", caption="../report/clustering.rst",
                   category="2 Clustering", labels={"figure": "accuracy, NMI, ARI vs d"}),
        pdf=f"{FIG}/clustering.pdf",
    log:
        "results/logs/figures/clustering.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --kind clustering --table {input.table} --out {output.png} 2> {log}"


rule figure_latent_maps:
    input:
        script=f"{FIG_SCRIPTS}/latent_maps.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
        models=lambda w: T.run_files(config, w.dataset, dims=[2], seeds=[FIRST_SEED]),
    output:
        png=report(f"{FIG}/{{dataset}}/latent_maps.png", caption="../report/latent_maps.rst",
                   category="3 Latent maps", labels={"dataset": "{dataset}", "figure": "codes at d = 2"}),
        pdf=f"{FIG}/{{dataset}}/latent_maps.pdf",
    params:
        flags=flags("figures"),
    log:
        "results/logs/figures/latent_maps_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python {input.script} --data {input.data} --models {input.models}"
        " --dataset {wildcards.dataset} --out {output.png} {params.flags} 2> {log}"


rule figure_images:
    input:
        script=f"{FIG_SCRIPTS}/images.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
        models=lambda w: T.run_files(config, w.dataset, seeds=[FIRST_SEED]),
    output:
        samples=report(f"{FIG}/{{dataset}}/samples.png", caption="../report/samples.rst",
                       category="4 Samples and reconstructions",
                       labels={"dataset": "{dataset}", "figure": "prior samples"}),
        samples_pdf=f"{FIG}/{{dataset}}/samples.pdf",
        recons=report(f"{FIG}/{{dataset}}/reconstructions.png", caption="../report/reconstructions.rst",
                      category="4 Samples and reconstructions",
                      labels={"dataset": "{dataset}", "figure": "test reconstructions"}),
        recons_pdf=f"{FIG}/{{dataset}}/reconstructions.pdf",
    params:
        flags=flags("figures"),
    log:
        "results/logs/figures/images_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["figures"]["threads"]
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python {input.script} --data {input.data} --models {input.models}"
        " --dataset {wildcards.dataset} --out-samples {output.samples}"
        " --out-recons {output.recons} {params.flags} 2> {log}"


rule figure_training_curves:
    input:
        script=f"{FIG_SCRIPTS}/training_curves.py",
        histories=lambda w: T.run_files(config, w.dataset, "history.csv"),
    output:
        png=report(f"{FIG}/{{dataset}}/training_curves.png", caption="../report/training_curves.rst",
                   category="5 Training curves", labels={"dataset": "{dataset}", "figure": "ELBO, rec, KL"}),
        pdf=f"{FIG}/{{dataset}}/training_curves.pdf",
    log:
        "results/logs/figures/training_curves_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --histories {input.histories} --dataset {wildcards.dataset}"
        " --out {output.png} 2> {log}"


rule ae_density:
    input:
        script=f"{FIG_SCRIPTS}/ae_density.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
        classifier="results/classifier/{dataset}.pt",
        models=lambda w: T.run_files(config, w.dataset, models=T.density_models(config), dims=[w.dim]),
    output:
        f"{STUDIES}/{{dataset}}/ae_density_d{{dim}}.csv",
    params:
        flags=flags("figures"),
    log:
        "results/logs/figures/ae_density_{dataset}_d{dim}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: config["figures"]["threads"]
    resources:
        mem_mb=6000,
        runtime=120,
    shell:
        "python {input.script} --data {input.data} --classifier {input.classifier}"
        " --models {input.models} --out {output} {params.flags} 2> {log}"


rule figure_ae_density:
    input:
        script=f"{FIG_SCRIPTS}/plot_ae_density.py",
        tables=lambda w: [f"{STUDIES}/{w.dataset}/ae_density_d{d}.csv" for d in T.density_dims(config)],
    output:
        png=report(f"{FIG}/{{dataset}}/ae_density.png", caption="../report/ae_density.rst",
                   category="7 AE ex-post density", labels={"dataset": "{dataset}", "figure": "density vs n"}),
        pdf=f"{FIG}/{{dataset}}/ae_density.pdf",
        csv="results/tables/ae_density_{dataset}.csv",
        md="results/tables/ae_density_{dataset}.md",
    log:
        "results/logs/figures/ae_density_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --tables {input.tables} --dataset {wildcards.dataset}"
        " --out {output.png} --out-csv {output.csv} --out-md {output.md} 2> {log}"


rule weights:
    input:
        script=f"{FIG_SCRIPTS}/weights.py",
        data=f"{PROCESSED}/{{dataset}}.npz",
        models=lambda w: T.run_files(config, w.dataset, dims=[MAX_DIM], seeds=[FIRST_SEED]),
    output:
        csv=report("results/tables/weights_{dataset}.csv", caption="../report/weights_table.rst",
                   category="8 Weight distributions", labels={"dataset": "{dataset}", "figure": "table"}),
        md="results/tables/weights_{dataset}.md",
        trained=report(f"{FIG}/{{dataset}}/weights_trained.png", caption="../report/weights.rst",
                       category="8 Weight distributions",
                       labels={"dataset": "{dataset}", "figure": "trained weights"}),
        trained_pdf=f"{FIG}/{{dataset}}/weights_trained.pdf",
        init=report(f"{FIG}/{{dataset}}/weights_init.png", caption="../report/weights.rst",
                    category="8 Weight distributions",
                    labels={"dataset": "{dataset}", "figure": "initial weights"}),
        init_pdf=f"{FIG}/{{dataset}}/weights_init.pdf",
        gain=report(f"{FIG}/{{dataset}}/weights_gain.png", caption="../report/weights_gain.rst",
                    category="8 Weight distributions",
                    labels={"dataset": "{dataset}", "figure": "held-out gain over Normal"}),
        gain_pdf=f"{FIG}/{{dataset}}/weights_gain.pdf",
    params:
        flags=flags("figures"),
    log:
        "results/logs/figures/weights_{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    shell:
        "python {input.script} --data {input.data} --models {input.models}"
        " --dataset {wildcards.dataset} --out-csv {output.csv} --out-md {output.md}"
        " --out-trained {output.trained} --out-init {output.init} --out-gain {output.gain}"
        " {params.flags} 2> {log}"


rule summary:
    input:
        script=f"{FIG_SCRIPTS}/summary.py",
        loglik="results/tables/loglik.csv",
        clustering="results/tables/clustering.csv",
        knn="results/tables/knn.csv",
        tables_md=T.summary_tables_md(config),
        figures=T.summary_figures(config),
        sample_quality="results/tables/sample_quality.csv",
        classifiers=expand("results/classifier/{dataset}.json", dataset=config["datasets"]),
        density=T.summary_density(config),
        weights=T.summary_weights(config),
        comparison="results/tables/paper_comparison.csv",
        pattern="results/tables/paper_pattern.csv",
        budget="results/tables/paper_budget.json",
        carried="results/tables/carried.json",
        spherical=T.spherical_tables(config),
        ablation=[p for p in T.ablation_outputs(config) if p.endswith(".csv")],
        convergence=[p for p in T.convergence_outputs(config) if p.endswith(".csv")],
        semisup=[p for p in T.semisup_outputs(config) if p.endswith(".csv")],
    output:
        "results/summary.md",
    log:
        "results/logs/figures/summary.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} --out {output} --loglik {input.loglik}"
        " --clustering {input.clustering} --knn {input.knn} --tables-md {input.tables_md}"
        " --figures {input.figures} --sample-quality {input.sample_quality}"
        " --classifiers {input.classifiers} --density {input.density} --weights {input.weights}"
        " --comparison {input.comparison} --pattern {input.pattern} --budget {input.budget}"
        " --carried {input.carried}"
        " --spherical {input.spherical} --ablation {input.ablation} --convergence {input.convergence}"
        " --semi-supervised {input.semisup}"
        " 2> {log}"
