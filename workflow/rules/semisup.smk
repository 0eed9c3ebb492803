# Semi-supervised classification (vaepriors.semisup): M2 alone on pixels, and M1+M2 on the codes
# of the grid's trained models (the same seed's run: none is trained again), then one table and
# one figure. The runs are the `semi_supervised` section's, per seed of `seeds` (none while its
# labels list is empty).
# A run's params are the values it uses (semisup.RUN_KEYS), so it is redone when one changes.
from vaepriors import semisup as SEMI  # noqa: E402

SEMI.check(config)

wildcard_constraints:
    m1="|".join(families.names()),
    m2="|".join(families.names()),
    labels=r"\d+",

rule semisup_m2:
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
    output:
        SEMI.PIXEL_RUN,
    params:
        values=SEMI.run_flags(config),
    log:
        "results/logs/semisup/{dataset}/pixels+{m2}/n{labels}/s{seed}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: SEMI.section(config).get("threads", 1)
    resources:
        mem_mb=3000,
        runtime=600,
    shell:
        "python scripts/semisup.py run --data {input.data} --out {output} --dataset {wildcards.dataset}"
        " --m2-model {wildcards.m2} --labels {wildcards.labels} --seed {wildcards.seed}"
        " --threads {threads} {params.values} 2> {log}"


rule semisup_m1m2:
    input:
        data=f"{PROCESSED}/{{dataset}}.npz",
        m1=f"results/models/{{dataset}}/{{m1}}/d{{dim}}/s{{seed}}/model.pt",
    output:
        SEMI.M1M2_RUN,
    params:
        values=SEMI.run_flags(config),
    log:
        "results/logs/semisup/{dataset}/{m1}-d{dim}+{m2}/n{labels}/s{seed}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: SEMI.section(config).get("threads", 1)
    resources:
        mem_mb=3000,
        runtime=600,
    shell:
        "python scripts/semisup.py run --data {input.data} --out {output} --dataset {wildcards.dataset}"
        " --m2-model {wildcards.m2} --labels {wildcards.labels} --seed {wildcards.seed}"
        " --m1 {input.m1} --threads {threads} {params.values} 2> {log}"


rule semisup_table:
    input:
        script="scripts/semisup.py",
        runs=[r["path"] for r in SEMI.runs(config)],
        references="workflow/references/semisup",
    output:
        csv=f"{SEMI.TABLE}.csv",
        md=f"{SEMI.TABLE}.md",
        png=report(f"{SEMI.FIGURE}.png", caption="../report/semi_supervised.rst",
                   category="8 Semi-supervised", labels={"figure": "accuracy vs labels"}),
        pdf=f"{SEMI.FIGURE}.pdf",
    log:
        "results/logs/semisup/table.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python {input.script} table --references {input.references} --out-csv {output.csv}"
        " --out-md {output.md} --out-png {output.png} --runs {input.runs} 2> {log}"
