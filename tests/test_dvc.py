"""DVC runs the same pipeline as Snakemake (issues 6 and 26): dvc.yaml is generated from the rules.

Fast: the committed dvc.yaml is what the generator writes for params.yaml; for the quick profile
DVC reads one stage per job that `snakemake -n --forceall` plans, with the job's outputs and
inputs, and the `plan` stage records each job's command as Snakemake would run it; a grid changed
without writing dvc.yaml again is refused, leaving the recorded commands as they were; `dvc plots
show` renders offline.

Slow (end to end on a shrunk quick profile, in a temporary git repository holding a copy of the
project): `dvc repro` completes, a second one runs nothing, adding a seed would run only the new
runs, `dvc exp run -S train.lr=...` reruns exactly every stage but the data stages (download,
prepare, reference clustering, feature classifier), `dvc push` to a local remote
then `git clone` + `dvc pull` gives byte-identical results, and the hand-over between the
engines works without recomputing (`snakemake --touch` after `dvc pull`; `dvc commit` after a
Snakemake run).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from vaepriors import dvcgen
from vaepriors.config import REPO_ROOT, load_params

BIN = Path(sys.executable).parent
QUICK = REPO_ROOT / "profiles" / "quick" / "params.yaml"
RESULT_PREFIXES = ("results/", "data/raw/", "data/processed/")
PER_RUN = ("train", "evaluate")
# Stages upstream of training, or beside it (the spherical posteriors study reads no data): a
# training parameter must not rerun them.
DATA_ONLY = {"download", "prepare", "reference_clustering", "feature_classifier", "spherical_study"}


# --- helpers --------------------------------------------------------------------------------------

def project_files() -> list[str]:
    """What a clone holds: tracked files plus untracked, not ignored ones (work in progress)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (REPO_ROOT / f).is_file()})


def copy_project(dest: Path, params: dict, dvc_yaml: bool = True) -> Path:
    """A git repository under dest holding the project's files, params.yaml replaced by `params`
    (and dvc.yaml written for it)."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    write_params(dest, params)
    sh(["git", "init", "-q"], dest)
    if dvc_yaml:
        sh([sys.executable, dvcgen.TOOL, "write"], dest)  # for this grid, as docs/running.md says
    return dest


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def env_for(root: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `python`, `dvc`: this venv
    env["PYTHONPATH"] = str(root / "src")  # the copy's package, not the editable install
    env["DVC_NO_ANALYTICS"] = "1"
    env.update({"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"})
    return env


def sh(args: list[str], cwd: Path, timeout: float = 1800) -> str:
    out = subprocess.run(args, cwd=cwd, env=env_for(cwd), capture_output=True, text=True,
                         check=False, timeout=timeout)
    assert out.returncode == 0, (
        f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    )
    return out.stdout


def dvc(*args: str, cwd: Path, **kw) -> str:
    return sh([str(BIN / "dvc"), *args], cwd, **kw)


def snakemake(*args: str, cwd: Path, **kw) -> str:
    return sh([sys.executable, "-m", "snakemake", "--nolock", *args], cwd, **kw)


def dvc_stages(root: Path) -> dict[str, dict]:
    """Every stage of dvc.yaml as DVC reads it: name -> outputs and dependencies."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {stage.name: {"outputs": {str(o.def_path) for o in stage.outs},
                             "deps": {str(d.def_path) for d in stage.deps}}
                for stage in repo.index.stages}


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"^Running stage '([^']+)'", log, flags=re.MULTILINE))


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under results/ (but logs) and data/processed/."""
    out = {}
    for top in ("results", "data/processed"):
        for path in sorted((root / top).rglob("*")):
            rel = str(path.relative_to(root))
            if path.is_file() and not rel.startswith("results/logs/") and path.name != ".gitkeep":
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def quick_params() -> dict:
    return load_params(REPO_ROOT / "params.yaml", QUICK)


# --- fast: the two DAGs agree ---------------------------------------------------------------------

def test_the_committed_dvc_yaml_is_what_the_generator_writes():
    params = load_params(REPO_ROOT / "params.yaml")
    written = dvcgen.render(dvcgen.plan(REPO_ROOT), params)
    assert (REPO_ROOT / "dvc.yaml").read_text() == written, f"dvc.yaml is stale: run `{dvcgen.WRITE}`"


def test_dvc_reads_one_stage_per_job_with_its_command(tmp_path):
    root = copy_project(tmp_path / "repo", quick_params())
    jobs = {j.name: j for j in dvcgen.plan(root)}
    stages = dvc_stages(root)
    assert set(stages) == {*jobs, "plan"}
    assert stages["plan"]["outputs"] == {dvcgen.PLAN_DIR}
    for name, job in jobs.items():
        assert stages[name]["outputs"] == set(job.outputs), name
        assert stages[name]["deps"] == {dvcgen.plan_file(name), *job.inputs}, name
    # Conditional rules are conditional stages (the ex-post density study needs ae in models).
    assert any(j.rule == "ae_density" for j in jobs.values())

    # The plan stage records what Snakemake would run; `run` runs it as Snakemake would.
    sh([sys.executable, dvcgen.TOOL, "plan"], root)
    for name, job in jobs.items():
        assert json.loads((root / dvcgen.plan_file(name)).read_text())["cmd"] == job.cmd
    record = root / dvcgen.plan_file("spherical_study")
    record.write_text(json.dumps({"rule": "x", "cmd": "echo fine >&2; exit 3", "log": ["results/logs/x/y.log"]}))
    out = subprocess.run([sys.executable, dvcgen.TOOL, "run", "spherical_study"], cwd=root,
                         env=env_for(root), capture_output=True, text=True)
    assert out.returncode == 3 and "results/logs/x/y.log" in out.stderr and "fine" in out.stderr

    # A grid changed without writing dvc.yaml again: refused, naming the command, nothing changed.
    sh([sys.executable, dvcgen.TOOL, "plan"], root)
    before = {p.name: p.read_bytes() for p in (root / dvcgen.PLAN_DIR).iterdir()}
    params = quick_params()
    write_params(root, {**params, "seeds": [*params["seeds"], 7]})
    out = subprocess.run([sys.executable, dvcgen.TOOL, "plan"], cwd=root, env=env_for(root),
                         capture_output=True, text=True)
    assert out.returncode == 1 and dvcgen.WRITE in out.stderr and re.search(r"new, e\.g\. \['[\w-]+-7'", out.stderr)
    assert {p.name: p.read_bytes() for p in (root / dvcgen.PLAN_DIR).iterdir()} == before


def test_plots_page_renders_offline(tmp_path):
    """`dvc plots show` with the shipped template: vega inlined, no script loaded from the web."""
    root = copy_project(tmp_path / "repo", quick_params())
    hist = root / "results/models/digits/nvae/d2/s0/history.csv"
    hist.parent.mkdir(parents=True)
    hist.write_text("epoch,val_elbo\n1,-80\n2,-70\n")
    table = root / "results/tables/loglik.csv"
    table.parent.mkdir(parents=True)
    table.write_text("dataset,metric,latent_dim,nvae_mean,nvae_sd,nvae_n,svae_mean,svae_sd,svae_n,"
                     "gmmvae_mean,gmmvae_sd,gmmvae_n,ae_mean,ae_sd,ae_n,psvae_mean,psvae_sd,psvae_n,"
                     "lvae_mean,lvae_sd,lvae_n,vamp_mean,vamp_sd,vamp_n\n"
                     "digits,loglik,2,-30,1,2,-29,1,2,-31,1,2,-28,1,2,-29,1,2,-30,1,2,-27,1,2\n"
                     "digits,loglik,5,-25,1,2,-24,1,2,-26,1,2,-23,1,2,-24,1,2,-25,1,2,-22,1,2\n"
                     "digits,elbo,2,-32,1,2,-31,1,2,-33,1,2,-30,1,2,-31,1,2,-32,1,2,-29,1,2\n")
    dvc("plots", "show", "-o", "plots_out", cwd=root)
    html = (root / "plots_out" / "index.html").read_text()
    assert "vega@5" in html and "vegaEmbed" in html
    assert re.search(r"<script[^>]*\bsrc\s*=", html) is None, "a script would load from the web"
    assert "cdn.jsdelivr" not in html
    assert "log-likelihood vs latent dimension" in html and "digits nvae d=2 seed 0" in html


# --- slow: end to end in a temporary git repository -----------------------------------------------

@pytest.mark.slow
def test_dvc_end_to_end(tmp_path):
    params = quick_params()
    # Shrunk for time (every stage is a Python process importing torch); the stage-set assertions
    # below are exact for whatever grid this is.
    params["models"] = ["nvae", "ae"]
    params["latent_dims"] = [2]
    params["seeds"] = params["seeds"][:1]
    # The semi-supervised study on that grid; no M2 alone on pixels: it depends on no training, so
    # the train.lr experiment would skip it.
    params["semi_supervised"].update(m1_models=params["models"][:1], m1_dims=params["latent_dims"],
                                     pixel_models=[])
    runs = {f"{d}-{m}-{k}-{s}" for d in params["datasets"] for m in params["models"]
            for k in params["latent_dims"] for s in params["seeds"]}
    timings = {}

    root = copy_project(tmp_path / "repo", params)
    declared = dvc_stages(root)
    stages = set(declared)
    for rule in PER_RUN:
        assert {n for n in stages if n.startswith(rule + "-")} == {f"{rule}-{r}" for r in runs}
    data_stages = {n for n in stages if n.split("-")[0] in DATA_ONLY}
    assert data_stages and "aggregate" in stages
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "project"], root)

    t0 = time.monotonic()
    log = dvc("repro", cwd=root)
    timings["repro"] = time.monotonic() - t0
    assert ran_stages(log) == stages
    assert "summary.json" in dvc("metrics", "show", cwd=root)
    assert ran_stages(dvc("repro", cwd=root)) == set(), "a second dvc repro must run nothing"

    # Adding a seed (and writing dvc.yaml again, as docs/running.md says): of the per-run stages
    # only the new runs are out of date, no data stage is.
    more = {**params, "seeds": [*params["seeds"], max(params["seeds"]) + 1]}
    write_params(root, more)
    sh([sys.executable, dvcgen.TOOL, "write"], root)
    stale = set(json.loads(dvc("status", "--json", cwd=root)))
    new_runs = {f"{st}-{r[: r.rindex('-')]}-{more['seeds'][-1]}" for st in PER_RUN for r in runs}
    assert {n for n in stale if n.split("-")[0] in PER_RUN} == new_runs
    assert "aggregate" in stale and not stale & data_stages
    write_params(root, params)
    sh([sys.executable, dvcgen.TOOL, "write"], root)
    assert json.loads(dvc("status", "--json", cwd=root)) == {}

    # One training parameter, as an experiment: everything but the data stages reruns.
    lr = params["train"]["lr"] / 2
    t0 = time.monotonic()
    log = dvc("exp", "run", "-S", f"train.lr={lr}", cwd=root)
    timings["exp run -S train.lr"] = time.monotonic() - t0
    assert ran_stages(log) == stages - data_stages
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["lr"] == lr
    shown = json.loads(dvc("exp", "show", "--json", cwd=root))
    experiments = [e for row in shown for e in row.get("experiments") or []]
    assert len(experiments) == 1 and f'"lr": {lr}' in json.dumps(experiments)
    assert ran_stages(dvc("repro", cwd=root)) == set()

    # Every result file is a declared output, or in one (none would be missing after a pull).
    outputs = set().union(*(s["outputs"] for s in declared.values()))
    files = {f for f in digests(root) if not f.startswith(dvcgen.PLAN_DIR + "/")}
    assert files == {o for o in outputs if o.startswith(("results/", "data/proc"))} - {dvcgen.PLAN_DIR}
    assert {f for f in digests(root) if f not in files} == {dvcgen.plan_file(n) for n in stages - {"plan"}}

    # Versioned results: push to a local remote, clone, pull, compare every byte.
    dvc("remote", "add", "-d", "local", str(tmp_path / "remote"), cwd=root)
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "results"], root)
    assert sh(["git", "status", "--porcelain"], root).strip() == ""
    tracked = sh(["git", "ls-files"], root).split()
    assert not [f for f in tracked if f.startswith(RESULT_PREFIXES) and not f.endswith(".gitkeep")]
    dvc("push", cwd=root)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    t0 = time.monotonic()
    dvc("pull", cwd=clone)
    timings["pull"] = time.monotonic() - t0
    assert digests(clone) == digests(root)
    assert ran_stages(dvc("repro", cwd=clone)) == set()

    # DVC -> Snakemake: after `dvc pull`, `snakemake --touch` makes Snakemake accept the files.
    snakemake("--touch", "--cores", "1", cwd=clone)
    assert "Nothing to be done" in snakemake("-n", "--cores", "1", cwd=clone)

    # Snakemake -> DVC: Snakemake reruns what an evaluate param change invalidates (--touch
    # recorded the params), then `dvc commit` records those outputs in dvc.lock (after the plan
    # stage records the new commands): nothing to redo.
    changed = yaml.safe_load((clone / "params.yaml").read_text())
    samples = changed["evaluate"]["importance_samples"]
    changed["evaluate"]["importance_samples"] = max(2, samples // 2)
    write_params(clone, changed)
    t0 = time.monotonic()
    snakemake("--cores", "2", cwd=clone)
    timings["snakemake after evaluate change"] = time.monotonic() - t0
    stale = set(json.loads(dvc("status", "--json", cwd=clone)))
    assert {f"evaluate-{r}" for r in runs} | {"aggregate"} <= stale
    untouched = {n for n in stages if n.split("-")[0] in {"download", "prepare", "train"}}
    assert not stale & untouched
    dvc("repro", "--single-item", "plan", cwd=clone)
    dvc("commit", "--force", cwd=clone)
    assert json.loads(dvc("status", "--json", cwd=clone)) == {}
    assert ran_stages(dvc("repro", cwd=clone)) == set()
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
