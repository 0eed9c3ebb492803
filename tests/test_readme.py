"""Every command in the READMEs' ```bash blocks works as written (issue 19).

Each command is one test case, checked in a copy of the project: the long ones by dry run
(`snakemake -n`, `make -n`, the DVC stage or param it names), the cheap ones for real
(`snakemake --unlock`, `dvc stage list`, `dvc remote add`, ...). A command no check knows fails,
so a new command in a README needs a check here; the few that cannot run in a test (root, network,
a finished run) are listed in DOCUMENTED_ONLY with the reason and what tests them instead.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from vaepriors.config import REPO_ROOT, ConfigError, coerce_overrides, load_params, load_schema, validate

READMES = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "running.md", REPO_ROOT / "benchmarks" / "README.md"]
BIN = Path(sys.executable).parent
TIMEOUT = 300

# command prefix -> why it is not run here, and what checks it instead
DOCUMENTED_ONLY = {
    "sudo apt-get install": "needs root and the network (Debian's dataset-fashion-mnist); the "
                            "downloader's use of /usr/share/datasets is tested in tests/test_download.py",
    "snakemake --report": "builds from a finished run's figures; the rules' report captions are "
                          "checked by `snakemake --lint` (tests/test_workflow.py)",
    "git add": "commits a finished run's dvc.lock; tests/test_dvc.py (slow) commits, pushes, "
               "clones and pulls end to end",
    "git commit": "as `git add`",
    "dvc push": "needs a remote holding a finished run; tests/test_dvc.py (slow) pushes and pulls",
    "dvc pull": "as `dvc push`",
}


def readme_commands() -> list[tuple[str, str, list[str]]]:
    """(readme, command text, tokens) of every command in a ```bash block; `&&` splits commands."""
    out = []
    for readme in READMES:
        for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                tokens = shlex.split(line, comments=True)
                while tokens:
                    cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                    out.append((readme.relative_to(REPO_ROOT).as_posix(), shlex.join(tokens[:cut]), tokens[:cut]))
                    tokens = tokens[cut + 1 :]
    return out


COMMANDS = readme_commands()


def test_the_readmes_have_commands():
    # a README whose blocks stopped parsing would otherwise pass with nothing checked
    assert sum(1 for readme, _, _ in COMMANDS if readme == "README.md") >= 15


# --- a copy of the project to run commands in ------------------------------------------------------

def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (REPO_ROOT / f).is_file()})


def env(path: str | None = None) -> dict:
    e = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
         "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    e["PATH"] = path if path is not None else f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return e


def run(args: list[str], cwd: Path, path: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env(path), capture_output=True, text=True, timeout=TIMEOUT)


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"{shlex.join(res.args)}\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme") / "vaepriors"
    for rel in project_files():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, root / rel)
    ok(run(["git", "init", "-q"], root))
    ok(run(["git", "add", "-A"], root))
    ok(run(["git", "commit", "-q", "-m", "copy"], root))
    return root


# --- checks, one per kind of command ------------------------------------------------------------

def check_snakemake(tokens: list[str], root: Path) -> None:
    path = None
    if tokens[0] != "snakemake":
        # `.venv/bin/snakemake` without an activated environment: the venv is not on PATH
        assert tokens[0] == ".venv/bin/snakemake", tokens[0]
        tokens = [str(BIN / "snakemake"), *tokens[1:]]
        path = "/usr/bin:/bin"
    if "--profile" in tokens and tokens[tokens.index("--profile") + 1] == "profiles/slurm":
        if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
            pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[slurm]'); "
                        "tests/slurm/run_slurm_test.sh runs this profile on a real SLURM")
    if "--unlock" in tokens:
        ok(run(tokens, root, path))  # cheap and harmless: run it
        return
    out = ok(run([*tokens, "--dry-run", "--quiet", "rules"], root, path))
    assert re.search(r"^total\s+\d+", out, re.M), out[-2000:]
    if path is not None:
        # a dry run does not start `python`: run the cheapest job the same way, for real
        ok(run([tokens[0], "--cores", "1", "data/processed/digits.npz", "--configfile",
                "profiles/quick/params.yaml"], root, path))
        assert (root / "data" / "processed" / "digits.npz").is_file()


def check_make(tokens: list[str], root: Path) -> None:
    """`make -n`, then each snakemake command make would run, by dry run."""
    out = ok(run(["make", "-n", *tokens[1:], f"VENV={BIN.parent}"], root))
    for line in out.splitlines():
        words = shlex.split(line)
        if words and Path(words[0]).name == "snakemake":
            ok(run([*words, "--dry-run", "--quiet", "rules"], root))


def check_source(tokens: list[str], root: Path) -> None:
    # `source .venv/bin/activate`: the environment `make setup` creates
    venv = re.search(r"^VENV \?= (\S+)$", (root / "Makefile").read_text(), re.M).group(1)
    assert tokens[1] == f"{venv}/bin/activate", tokens
    assert (BIN / "activate").is_file()


def check_pip(tokens: list[str], root: Path) -> None:
    # installing needs the network: check that the extra it names exists
    assert tokens[:3] == ["pip", "install", "-e"], tokens
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    match = re.fullmatch(r"\.\[(\w+)\]", tokens[3])
    assert match and match.group(1) in extras, (tokens[3], sorted(extras))


def check_python(tokens: list[str], root: Path) -> None:
    # scripts that run for minutes: their arguments must parse (argparse stops at --help)
    assert (root / tokens[1]).is_file(), tokens[1]
    ok(run([sys.executable, *tokens[1:], "--help"], root))


def check_pytest(tokens: list[str], root: Path) -> None:
    # a test file documented for another machine (a GPU): it exists and pytest collects it here
    assert (root / tokens[3]).is_file(), tokens[3]
    ok(run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tokens[3:]], root))


def stage_names(root: Path) -> set[str]:
    return set(ok(run(["dvc", "stage", "list", "--name-only"], root)).split())


def check_dvc(tokens: list[str], root: Path) -> None:
    sub = tokens[1:3]
    if sub[0] == "repro":
        # a dry run needs the data; check the targets are stages
        targets = [t for t in tokens[2:] if not t.startswith("-")]
        names = stage_names(root)
        assert names and all(t in names for t in targets), targets
    elif sub == ["exp", "run"]:
        # the -S params exist and take the value
        params = load_params(root / "params.yaml")
        for setting in (tokens[i + 1] for i, t in enumerate(tokens) if t == "-S"):
            key, value = setting.split("=", 1)
            section, name = key.split(".")
            assert name in params[section], key
            params[section][name] = yaml.safe_load(value)
        validate(params, load_schema(root / "workflow" / "schemas" / "params.schema.yaml"))
    elif sub[0] in ("stage", "metrics", "plots", "exp", "remote"):
        ok(run(tokens, root))  # read-only, or (remote add) only writes .dvc/config
    else:
        raise AssertionError(f"no check for {shlex.join(tokens)}")


def check_script(tokens: list[str], root: Path) -> None:
    # sudo tests/slurm/run_slurm_test.sh [...]: needs root and installs SLURM; check it parses
    assert tokens[0] == "sudo" and (root / tokens[1]).is_file()
    ok(run(["bash", "-n", tokens[1]], root))


CHECKS = [
    (lambda t: Path(t[0]).name == "snakemake", check_snakemake),
    (lambda t: t[0] == "make", check_make),
    (lambda t: t[0] in ("source", "."), check_source),
    (lambda t: t[0] == "pip", check_pip),
    (lambda t: t[0] == "python" and t[1].endswith(".py"), check_python),
    (lambda t: t[:3] == ["python", "-m", "pytest"], check_pytest),
    (lambda t: t[0] == "dvc", check_dvc),
    (lambda t: t[:2] == ["sudo", "tests/slurm/run_slurm_test.sh"], check_script),
]


@pytest.mark.parametrize("readme, command, tokens", COMMANDS, ids=[f"{r}: {c}" for r, c, _ in COMMANDS])
def test_readme_command_works_as_written(readme, command, tokens, project):
    for prefix, reason in DOCUMENTED_ONLY.items():
        if command.startswith(prefix):
            assert reason  # listed on purpose, with the reason and what tests it instead
            return
    for matches, check in CHECKS:
        if matches(tokens):
            check(tokens, project)
            return
    raise AssertionError(f"{readme}: no check for `{command}`: add one to tests/test_readme.py")


def test_the_documented_override_forms_are_typed():
    # the README's --config examples, as Snakemake hands them over (list items as strings)
    typed = coerce_overrides({"seeds": ["0", "1"], "latent_dims": ["2", "10"],
                              "train": {"lr": "0.0005", "max_epochs": "50"}})
    assert typed == {"seeds": [0, 1], "latent_dims": [2, 10], "train": {"lr": 0.0005, "max_epochs": 50}}
    with pytest.raises(ConfigError, match=r"train\.lr"):
        validate({**load_params(), "train": {**load_params()["train"], "lr": float("nan")}}, load_schema())
