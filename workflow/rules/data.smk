# Data stage: raw files (downloaded and verified, or snapshotted offline) -> prepared arrays.


rule download:
    input:
        script="scripts/download.py",
    output:
        directory(f"{RAW}/{{dataset}}"),
    params:
        data=flags("data"),
    log:
        "results/logs/download/{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    shell:
        "python {input.script} --dataset {wildcards.dataset} {params.data} 2> {log}"


rule prepare:
    input:
        script="scripts/prepare.py",
        raw=f"{RAW}/{{dataset}}",
    output:
        f"{PROCESSED}/{{dataset}}.npz",
    params:
        data=flags("data"),
    log:
        "results/logs/prepare/{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "python {input.script} --dataset {wildcards.dataset} --out {output} {params.data} 2> {log}"
