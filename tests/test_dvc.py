"""DVC runs the same pipeline as Snakemake (issue 6).

Fast: for the default params.yaml and the quick profile, the jobs `snakemake -n --forceall` plans
and the stages dvc.yaml declares have the same outputs, grouped the same way, and run the same
command (script and flags) apart from Snakemake's `2> log`; `dvc plots show` renders offline.

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
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

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


def copy_project(dest: Path, params: dict) -> Path:
    """A git repository under dest holding the project's files, params.yaml replaced by `params`."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    write_params(dest, params)
    sh(["git", "init", "-q"], dest)
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


def load_expander(root: Path):
    spec = importlib.util.spec_from_file_location("dvc_expand", root / "workflow/dvc/expand.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snakemake_jobs(root: Path) -> list[dict]:
    """Every job of `snakemake -n --forceall -p`: rule, outputs and shell command (no `2> log`)."""
    text = snakemake("-n", "--forceall", "-p", "--cores", "1", cwd=root)
    jobs, job = [], None
    for line in text.splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line)
        if head:
            job = {"rule": head.group(1), "outputs": frozenset(), "cmd": None}
            jobs.append(job)
        elif job is not None and line.startswith("    output: "):
            job["outputs"] = frozenset(line[len("    output: "):].split(", "))
        elif job is not None and line.startswith("Shell command: "):
            tokens = shlex.split(line[len("Shell command: "):])
            if tokens[-2:-1] == ["2>"]:
                tokens = tokens[:-2]
            job["cmd"] = tokens
    assert jobs, text[-3000:]
    return [j for j in jobs if j["rule"] != "all"]


def dvc_stages(root: Path) -> list[dict]:
    """Every stage of dvc.yaml with params resolved: name, outputs and command as run."""
    from dvc.repo import Repo

    expander = load_expander(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    stages = []
    with Repo(str(root)) as repo:
        for stage in repo.index.stages:
            tokens = shlex.split(stage.cmd)
            if tokens[1:2] == ["workflow/dvc/expand.py"]:  # the grid expansion the rule does
                tokens = expander.expand_command(tokens[tokens.index("--") + 1:], params)
            stages.append({"name": stage.name,
                           "outputs": frozenset(str(o.def_path) for o in stage.outs),
                           "cmd": tokens})
    return stages


def run_call(cmd: list[str], stage: str) -> tuple:
    """(the script's own arguments, the run's values) of a per-run command, from --settings JSON
    (Snakemake) or from the sections' flags (DVC). Threads are left out: Snakemake caps a job's
    at --cores."""
    from vaepriors.config import parse_sections, run_values

    sections = ["train", "model"] if stage == "train" else ["evaluate"]
    family = cmd[cmd.index("--model" if stage == "train" else "--family") + 1]
    if "--settings" in cmd:
        at = cmd.index("--settings")
        return tuple(cmd[:at]), json.loads(cmd[at + 1])
    keys = set().union(*(load_params(REPO_ROOT / "params.yaml")[s] for s in sections))
    at = next(i for i, t in enumerate(cmd) if t.startswith("--") and t[2:] in keys)
    cfg = parse_sections(cmd[at:], sections)
    return tuple(cmd[:at]), run_values(cfg, stage, family)


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

@pytest.mark.parametrize("profile", ["default", "quick"])
def test_dvc_yaml_declares_what_snakemake_plans(profile, tmp_path):
    params = load_params(REPO_ROOT / "params.yaml") if profile == "default" else quick_params()
    root = copy_project(tmp_path / "repo", params)
    jobs = snakemake_jobs(root)
    stages = dvc_stages(root)

    planned = set().union(*(j["outputs"] for j in jobs))
    declared = set().union(*(s["outputs"] for s in stages))
    assert planned - declared == set(), "planned by Snakemake, missing from dvc.yaml"
    assert declared - planned == set(), "declared in dvc.yaml, not planned by Snakemake"

    # One stage per job, with the same outputs and the same script and flags.
    by_outputs = {s["outputs"]: s for s in stages}
    assert len(by_outputs) == len(stages) == len(jobs)
    for job in jobs:
        stage = by_outputs.get(job["outputs"])
        assert stage is not None, f"no dvc.yaml stage has exactly the outputs of {job}"
        assert stage["name"].split("@")[0] == job["rule"]
        if job["rule"] in PER_RUN:
            # Snakemake hands a run its values as JSON; DVC the sections as flags, which the
            # script reduces to the same values (vaepriors.cli.parse_run_script).
            assert run_call(stage["cmd"], job["rule"]) == run_call(job["cmd"], job["rule"]), stage["name"]
        else:
            assert stage["cmd"] == job["cmd"], f"{stage['name']}: commands differ"

    grid = [params[k] for k in ("datasets", "models", "latent_dims", "seeds")]
    n_runs = len(grid[0]) * len(grid[1]) * len(grid[2]) * len(grid[3])
    for rule in PER_RUN:
        assert sum(s["name"].startswith(rule + "@") for s in stages) == n_runs


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
    # below are exact for whatever grid this is. dvc.yaml's figure stages need ae in models and
    # d = 2 in latent_dims (the rules make those figures conditional, DVC cannot).
    params["models"] = ["nvae", "ae"]
    params["latent_dims"] = [2]
    params["seeds"] = params["seeds"][:1]
    # The semi-supervised study on that grid (dvc.yaml has stages for the grid's M1 runs only);
    # no M2 alone on pixels: it depends on no training, so the train.lr experiment would skip it.
    params["semi_supervised"].update(m1_models=params["models"][:1], m1_dims=params["latent_dims"],
                                     pixel_models=[])
    runs = {f"{d}-{m}-{k}-{s}" for d in params["datasets"] for m in params["models"]
            for k in params["latent_dims"] for s in params["seeds"]}
    timings = {}

    root = copy_project(tmp_path / "repo", params)
    declared = dvc_stages(root)
    stages = {s["name"] for s in declared}
    for rule in PER_RUN:
        assert {n for n in stages if n.startswith(rule + "@")} == {f"{rule}@{r}" for r in runs}
    data_stages = {n for n in stages if n.split("@")[0] in DATA_ONLY}
    assert data_stages and "aggregate" in stages
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-q", "-m", "project"], root)

    t0 = time.monotonic()
    log = dvc("repro", cwd=root)
    timings["repro"] = time.monotonic() - t0
    assert ran_stages(log) == stages
    assert "summary.json" in dvc("metrics", "show", cwd=root)
    assert ran_stages(dvc("repro", cwd=root)) == set(), "a second dvc repro must run nothing"

    # Adding a seed: of the per-run stages only the new runs are out of date, no data stage is.
    more = {**params, "seeds": [*params["seeds"], max(params["seeds"]) + 1]}
    write_params(root, more)
    stale = set(json.loads(dvc("status", "--json", cwd=root)))
    new_runs = {f"{st}@{r[: r.rindex('-')]}-{more['seeds'][-1]}" for st in PER_RUN for r in runs}
    assert {n for n in stale if n.split("@")[0] in PER_RUN} == new_runs
    assert "aggregate" in stale and not stale & data_stages
    write_params(root, params)
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

    # Every result file is a declared output (none would be missing after a pull).
    outputs = set().union(*(s["outputs"] for s in declared))
    assert set(digests(root)) == {o for o in outputs if o.startswith(("results/", "data/proc"))}

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
    # recorded the params), then `dvc commit` records those outputs in dvc.lock: nothing to redo.
    changed = yaml.safe_load((clone / "params.yaml").read_text())
    samples = changed["evaluate"]["importance_samples"]
    changed["evaluate"]["importance_samples"] = max(2, samples // 2)
    write_params(clone, changed)
    t0 = time.monotonic()
    snakemake("--cores", "2", cwd=clone)
    timings["snakemake after evaluate change"] = time.monotonic() - t0
    stale = set(json.loads(dvc("status", "--json", cwd=clone)))
    assert {f"evaluate@{r}" for r in runs} | {"aggregate"} <= stale
    untouched = {n for n in stages if n.split("@")[0] in {"download", "prepare", "train"}}
    assert not stale & untouched
    dvc("commit", "--force", cwd=clone)
    assert json.loads(dvc("status", "--json", cwd=clone)) == {}
    assert ran_stages(dvc("repro", cwd=clone)) == set()
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
