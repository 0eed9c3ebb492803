#!/usr/bin/env python
"""Run a command with Snakemake-style patterns expanded over the grid in params.yaml.

    python workflow/dvc/expand.py [--params params.yaml] -- CMD ARG ...

dvc.yaml uses this for the stages whose Snakemake rule takes one input per run (aggregate, figures):
DVC's ${...} templating cannot build the cartesian product that the rules' `runs()` / `expand()`
build, so the stage writes the rule's pattern instead and this wrapper expands it:

- an ARG containing {dataset}, {model}, {dim} or {seed} becomes its expansions over the params.yaml
  lists datasets x models x latent_dims x seeds (only the fields it names, in that order, as
  Snakemake's expand() does);
- {max_dim} is max(latent_dims) (MAX_DIM in workflow/rules/figures.smk);
- an ARG holding several space-separated patterns expands them together, combination by
  combination ("a/{dataset}/x b/{dataset}/y" -> a/d1/x b/d1/y a/d2/x b/d2/y), for rules whose
  input list is built in a loop over datasets;
- {semisup_runs} is every semi-supervised run result (vaepriors.semisup.runs, the rule's inputs);
- other arguments pass through unchanged.

The command then replaces this process (exec), so its exit status is the stage's.
"""

from __future__ import annotations

import itertools
import os
import re
import sys

import yaml

GRID = {"dataset": "datasets", "model": "models", "dim": "latent_dims", "seed": "seeds"}
FIELD = re.compile(r"\{(" + "|".join([*GRID, "max_dim"]) + r")\}")


def expand_arg(arg: str, params: dict) -> list[str]:
    if arg == "{semisup_runs}":
        from vaepriors import semisup

        return [run["path"] for run in semisup.runs(params)]
    if not FIELD.search(arg):
        return [arg]
    patterns = arg.split()
    names = [n for n in GRID if any("{" + n + "}" in p for p in patterns)]
    scalars = {"max_dim": str(max(params["latent_dims"]))}
    out = []
    for values in itertools.product(*(params[GRID[n]] for n in names)):
        sub = {**scalars, **dict(zip(names, map(str, values)))}
        out += [FIELD.sub(lambda m, sub=sub: sub[m.group(1)], p) for p in patterns]
    return out


def expand_command(cmd: list[str], params: dict) -> list[str]:
    return [word for arg in cmd for word in expand_arg(arg, params)]


def main(argv: list[str]) -> int:
    params_path = "params.yaml"
    if argv[:1] == ["--params"]:
        params_path, argv = argv[1], argv[2:]
    if argv[:1] != ["--"] or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(params_path) as fh:
        params = yaml.safe_load(fh)
    cmd = expand_command(argv[1:], params)
    os.execvp(cmd[0], cmd)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
