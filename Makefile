# Two commands for a new user:  `make reproduce`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Rules and DVC stages call `python`: the venv's, first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
CORES ?= all

.PHONY: setup reproduce quick test test-slurm faults faults-slurm bench clean-results

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: a looser spec would pull gigabytes of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(BIN)/.installed

## The full replication grid from params.yaml.
reproduce: setup
	$(BIN)/snakemake --cores $(CORES)

## The quick profile: the whole DAG on scikit-learn's digits in a few minutes.
quick: setup
	$(BIN)/snakemake --cores $(CORES) --configfile profiles/quick/params.yaml

## Unit tests and the short end-to-end checks.
test: setup
	$(BIN)/python -m pytest -q

## The pipeline through a real single-node SLURM (root, Debian): every rule of the quick profile
## on a smaller grid (the whole quick grid: SLURM_GRID=).
SLURM_GRID ?= --config 'models=[nvae,svae,ae]' 'latent_dims=[2]'
test-slurm: setup
	$(BIN)/pip install --quiet -e .[slurm]
	bash tests/slurm/run_slurm_test.sh $(SLURM_GRID)

## The kill campaign's SLURM leg on a private single-node cluster (root, Debian): results/faults-slurm.md
faults-slurm: setup
	$(BIN)/pip install --quiet -e .[slurm]
	bash tests/slurm/run_slurm_test.sh --kill

## The kill campaign: SIGKILL at 8 points of a small DAG under Snakemake and DVC, resumed, compared.
faults: setup
	$(BIN)/python tests/faults/campaign.py --engine snakemake dvc --points 8 --report results/faults.md

## Side-by-side speed benchmark against pythae (optional extra).
bench: setup
	$(BIN)/pip install --quiet -e .[bench]
	$(BIN)/python benchmarks/bench_speed.py

clean-results:
	rm -rf results/models results/metrics results/tables results/figures results/logs
