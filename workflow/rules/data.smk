# Data stage: raw files (downloaded and verified, or snapshotted offline) -> prepared arrays.
# A file is redone when what it holds would change: the download never (its files are verified
# by sha256), the prepared arrays when a split or binarisation value changes, not when a folder
# or a mirror moves.


rule download:
    output:
        directory(f"{RAW}/{{dataset}}"),
    params:
        data=unchecked(flags("data")),
    log:
        "results/logs/download/{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=30,
    shell:
        "python scripts/download.py --dataset {wildcards.dataset} {params.data} 2> {log}"


rule prepare:
    input:
        raw=f"{RAW}/{{dataset}}",
    output:
        f"{PROCESSED}/{{dataset}}.npz",
    params:
        paths=unchecked(data_flags(paths=True)),
        values=data_flags(paths=False),
    log:
        "results/logs/prepare/{dataset}.log",
    conda:
        "../envs/vaepriors.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    shell:
        "python scripts/prepare.py --dataset {wildcards.dataset} --out {output} {params.paths} "
        "{params.values} 2> {log}"
