"""dvc.yaml from the Snakefile, so that the pipeline is defined once (the rules).

`write` plans the DAG as Snakemake does (`snakemake -n -p --forceall` on params.yaml) and writes one
DVC stage per job: the job's inputs as deps, its outputs as outs, and as command `stages.py run
NAME`, which runs the job's command as Snakemake would. The commands themselves live in the
`plan` stage's output (results/dvc/plan/NAME.json, one per job), which it writes from params.yaml
and the rules: a stage reruns when its command (the values it uses) or an input changes, as a job
does under Snakemake, and not when an unrelated key changes.

dvc.yaml is generated for a grid: after changing datasets, models, latent_dims or seeds (or any key
that adds or removes jobs), write it again; the `plan` stage refuses to run on a stale dvc.yaml.
"""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PLAN_DIR = "results/dvc/plan"
TOOL = "workflow/dvc/stages.py"
WRITE = f"python {TOOL} write"
# The files that define the jobs: when one changes, the plan is made again (and a job whose
# command did not change does not rerun).
DEFINITION = ["Snakefile", "workflow/rules", "workflow/schemas", TOOL, "src/vaepriors/dvcgen.py"]
# Enough that a rule's `threads` (a params.yaml value) is never capped by the planning machine.
CORES = 1024
METRICS = {"results/tables/summary.json"}
LOGLIK_TABLE = "results/tables/loglik.csv"
_CURVE = re.compile(r"^results/models/(?P<dataset>[^/]+)/(?P<model>[^/]+)/d(?P<dim>\d+)/s(?P<seed>\d+)/history\.csv$")
_BAD = set(string.punctuation) - {"_", "-"}  # DVC's rule for stage names


class StageError(Exception):
    pass


@dataclass
class Job:
    rule: str
    wildcards: list[tuple[str, str]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    cmd: str | None = None

    @property
    def name(self) -> str:
        parts = [self.rule, *(v for _, v in self.wildcards)]
        return "-".join("".join("_" if c in _BAD else c for c in p) for p in parts)


def _paths(text: str) -> list[str]:
    return [p for p in text.split(", ") if p]


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of `snakemake -n -p` output (all but the target rule `all`)."""
    jobs, job = [], None
    for line in text.splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line)
        if head:
            job = Job(head.group(1))
            jobs.append(job)
        elif job is None:
            continue
        elif line.startswith("    input: "):
            job.inputs = _paths(line[len("    input: "):])
        elif line.startswith("    output: "):
            job.outputs = _paths(line[len("    output: "):])
        elif line.startswith("    log: "):
            job.log = _paths(line[len("    log: "):])
        elif line.startswith("    wildcards: "):
            job.wildcards = [tuple(w.split("=", 1)) for w in line[len("    wildcards: "):].split(", ")]
        elif line.startswith("Shell command: "):
            job.cmd = line[len("Shell command: "):]
    jobs = [j for j in jobs if j.outputs]
    missing = [j.rule for j in jobs if j.cmd is None]
    if missing:
        raise StageError(f"rules without a shell command cannot become DVC stages: {sorted(set(missing))}")
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise StageError(f"two jobs map to one DVC stage name: {', '.join(twice)}")
    return jobs


def plan(root: Path, configfiles: list[str] | None = None) -> list[Job]:
    """Snakemake's jobs for the whole DAG of params.yaml (and ``configfiles``) under ``root``."""
    args = [sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--nolock",
            "--cores", str(CORES)]
    if configfiles:
        args += ["--configfile", *configfiles]
    out = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise StageError(f"Snakemake could not plan the DAG in {root}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    return parse_dry_run(out.stdout)


def _order(jobs: list[Job]) -> list[Job]:
    """Jobs by depth in the DAG (producers first), then by name: a stable, readable dvc.yaml."""
    producer = {o: j.name for j in jobs for o in j.outputs}
    by_name = {j.name: j for j in jobs}
    depth: dict[str, int] = {}

    def level(name: str) -> int:
        if name not in depth:
            ups = {producer[i] for i in by_name[name].inputs if i in producer}
            depth[name] = 1 + max((level(u) for u in ups), default=0)
        return depth[name]

    return sorted(jobs, key=lambda j: (level(j.name), j.name))


def plan_file(name: str) -> str:
    return f"{PLAN_DIR}/{name}.json"


def _outs(job: Job) -> dict:
    outs, metrics, plots = [], [], []
    for path in job.outputs:
        curve = _CURVE.match(path)
        if path in METRICS:
            metrics.append(path)
        elif curve:
            plots.append({path: {"x": "epoch", "y": "val_elbo", "x_label": "epoch",
                                 "y_label": "validation ELBO (nats)",
                                 "title": "{dataset} {model} d={dim} seed {seed}".format(**curve.groupdict())}})
        else:
            outs.append(path)
    return {k: v for k, v in (("outs", outs), ("metrics", metrics), ("plots", plots)) if v}


def render(jobs: list[Job], params: dict) -> str:
    jobs = _order(jobs)
    stages = {"plan": {
        "cmd": f"python {TOOL} plan",
        "deps": DEFINITION,
        "params": [{"params.yaml": None}],
        # persist: a refused plan (a stale dvc.yaml) leaves the recorded commands as they were
        "outs": [{PLAN_DIR: {"persist": True}}],
    }}
    for job in jobs:
        stages[job.name] = {"cmd": f"python {TOOL} run {job.name}",
                            "deps": [plan_file(job.name), *job.inputs], **_outs(job)}
    doc = {"stages": stages}
    if any(LOGLIK_TABLE in j.outputs for j in jobs):
        doc["plots"] = [{"log-likelihood vs latent dimension": {
            "template": "loglik_vs_dim", "x": "latent_dim",
            "y": {LOGLIK_TABLE: [f"{m}_mean" for m in params["models"]]}}}]
    head = (f"# Generated by `{WRITE}` from the Snakefile and params.yaml: do not edit, and write\n"
            "# it again after changing the grid. One stage per Snakemake job; each runs the command\n"
            f"# the `plan` stage recorded for it in {PLAN_DIR}/ (see src/vaepriors/dvcgen.py).\n")
    return head + yaml.safe_dump(doc, sort_keys=False, width=120, default_flow_style=False)


def write(root: Path) -> Path:
    params = yaml.safe_load((root / "params.yaml").read_text())
    text = render(plan(root), params)
    target = root / "dvc.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
    return target


def declared_stages(root: Path) -> list[str]:
    doc = yaml.safe_load((root / "dvc.yaml").read_text())
    return [n for n in doc["stages"] if n != "plan"]


def write_plan(root: Path) -> int:
    """The `plan` stage: each job's command, for the jobs dvc.yaml declares."""
    jobs = plan(root)
    planned = {j.name for j in jobs}
    declared = set(declared_stages(root))
    if planned != declared:
        new, gone = sorted(planned - declared), sorted(declared - planned)
        raise StageError(
            f"dvc.yaml does not match the jobs of params.yaml ({len(new)} new, e.g. {new[:3]}; "
            f"{len(gone)} gone, e.g. {gone[:3]}): the grid changed since it was written. "
            f"Run `{WRITE}`, then `dvc repro` again.")
    folder = root / PLAN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in set(folder.glob("*.json")) - {root / plan_file(j.name) for j in jobs}:
        old.unlink()
    for job in jobs:
        record = {"rule": job.rule, "cmd": job.cmd, "log": job.log}
        (root / plan_file(job.name)).write_text(json.dumps(record, indent=1) + "\n")
    return len(jobs)


def run(root: Path, name: str) -> int:
    """Run a stage's recorded command as Snakemake runs a job's (bash, the log's folder made)."""
    path = root / plan_file(name)
    try:
        job = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StageError(f"{path}: no plan for stage {name!r} ({exc}); run `dvc repro plan`") from None
    for log in job["log"]:
        (root / log).parent.mkdir(parents=True, exist_ok=True)
    code = subprocess.run(["bash", "-c", "set -euo pipefail; " + job["cmd"]], cwd=root).returncode
    if code:
        logs = "".join(f"\n--- {log} (end) ---\n" + _tail(root / log) for log in job["log"])
        print(f"stage {name} failed (exit {code}): {job['cmd']}{logs}", file=sys.stderr)
    return code


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
