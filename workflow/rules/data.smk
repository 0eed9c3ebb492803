# Data stage: verified raw files -> prepared, split and binarised arrays.


rule download:
    input:
        script="scripts/download.py",
    output:
        expand(RAW + "/{{dataset}}/{file}", file=IDX_FILES),
    params:
        data=flags("data"),
    wildcard_constraints:
        dataset="|".join(IDX_DATASETS),
    log:
        "results/logs/download/{dataset}.log",
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    shell:
        "{PY} {input.script} --dataset {wildcards.dataset} {params.data} 2> {log}"


def prepare_inputs(wildcards):
    if wildcards.dataset in IDX_DATASETS:
        return expand(RAW + "/{dataset}/{file}", dataset=wildcards.dataset, file=IDX_FILES)
    return []


rule prepare:
    input:
        script="scripts/prepare.py",
        raw=prepare_inputs,
    output:
        PROCESSED + "/{dataset}.npz",
    params:
        data=flags("data"),
    log:
        "results/logs/prepare/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "{PY} {input.script} --dataset {wildcards.dataset} --out {output} {params.data} 2> {log}"
