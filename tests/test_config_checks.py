"""Every input checked before any job (issue 27): a walk over the schema tries a wrong type and an
out-of-range value for every key, path keys get a file where a directory belongs, and YAML syntax
errors carry the file and line. Through Snakemake, a refused configuration runs no job and records
nothing that would make the next run replan."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from vaepriors.config import (
    PATH_MARK,
    REPO_ROOT,
    ConfigError,
    check_paths,
    load_params,
    load_schema,
    load_yaml,
    validate,
)

WRONG_TYPE = {"integer": "seven", "number": "fast", "string": 5, "boolean": "yes", "array": "x",
              "object": 5}


def _base() -> dict:
    """params.yaml with every optional key present, so that each one is walked too."""
    cfg = load_params()
    cfg.update(convergence_samples=10, latent_dims_by_model={"nvae": [2]},
               ablation={"variants": {"lr": {"train": {"lr": 0.002}}}})
    return cfg


def _leaves(schema: dict, value, path: tuple = ()) -> Iterator[tuple[tuple, dict]]:
    """(key path, sub-schema) of every value in ``value`` the schema describes (mappings by key,
    lists by their first item) and of every optional key ``value`` lacks."""
    yield path, schema
    if isinstance(value, dict):
        props = schema.get("properties", {})
        rest = schema.get("additionalProperties")
        for key in {**props, **value}:
            sub_schema = props.get(key, rest if isinstance(rest, dict) else None)
            if sub_schema is not None:
                yield from _leaves(sub_schema, value.get(key), (*path, key))
    elif isinstance(value, list) and value and isinstance(schema.get("items"), dict):
        yield from _leaves(schema["items"], value[0], (*path, 0))


def _out_of_range(schema: dict):
    """A value of the right type the schema refuses, or None where any value of it is allowed."""
    if "enum" in schema or schema.get("x-latent-family"):
        return "not-an-option"
    if "minimum" in schema:
        return schema["minimum"] - 1
    if "exclusiveMinimum" in schema:
        return schema["exclusiveMinimum"]
    if "maximum" in schema:
        return schema["maximum"] + 1
    if schema.get("minLength"):
        return ""
    if schema.get("minItems"):
        return []
    if schema.get("minProperties"):
        return {}
    return None


def _set(cfg: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(cfg)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


BASE, SCHEMA = _base(), load_schema()


def _cases():
    for path, sub in _leaves(SCHEMA, BASE):
        if not path:
            continue
        kinds = sub.get("type")
        kind = kinds[0] if isinstance(kinds, list) else kinds
        if kind in WRONG_TYPE:
            yield path, "type", WRONG_TYPE[kind]
        bad = _out_of_range(sub)
        if bad is not None:
            yield path, "range", bad


CASES = list(_cases())


def _name(path: tuple) -> str:
    return ".".join(str(p) for p in path)


@pytest.mark.parametrize("path,what,bad", CASES, ids=[f"{_name(p)}-{w}" for p, w, _ in CASES])
def test_every_key_refuses_a_wrong_type_and_an_out_of_range_value(path, what, bad):
    with pytest.raises(ConfigError) as info:
        validate(_set(BASE, path, bad), SCHEMA)
    # the key named: a list item by its list's key (and index)
    assert _name(path) in str(info.value), str(info.value)


def test_the_walk_covers_every_key_of_the_schema():
    """Each key of every section is walked (a new key is tried without a test edit), and most
    have a range to try besides the type."""
    walked = {_name(p) for p, _, _ in CASES}
    schema = load_schema()
    for section in ("data", "model", "train", "evaluate", "figures"):
        for key in schema["properties"][section]["properties"]:
            assert f"{section}.{key}" in walked, f"{section}.{key}"
    ranged = {_name(p) for p, w, _ in CASES if w == "range"}
    assert len(CASES) > 100 and len(ranged) > 50, (len(CASES), len(ranged))


def test_path_keys_refuse_a_file_where_a_directory_belongs(tmp_path):
    cfg, schema = _base(), load_schema()
    marked = [key for key, sub in schema["properties"]["data"]["properties"].items()
              if sub.get(PATH_MARK) or sub.get("items", {}).get(PATH_MARK)]
    assert set(marked) == {"raw_dir", "processed_dir", "mirrors"}
    (tmp_path / "file").write_text("x")
    for key in marked:
        bad = ["file"] if key == "mirrors" else "file"
        with pytest.raises(ConfigError, match=rf"data\.{key}.*'file' is a file, not a directory"):
            check_paths(_set(cfg, ("data", key), bad), schema, base=tmp_path)
    with pytest.raises(ConfigError, match=r"data\.processed_dir: 'file/sub' cannot be created"):
        check_paths(_set(cfg, ("data", "processed_dir"), "file/sub"), schema, base=tmp_path)
    with pytest.raises(ConfigError, match=r"data\.mirrors\.0: 'gone': no such directory"):
        check_paths(_set(cfg, ("data", "mirrors"), ["gone"]), schema, base=tmp_path)
    check_paths(_set(cfg, ("data", "processed_dir"), "new/deeper"), schema, base=tmp_path)


@pytest.mark.parametrize("text,where", [
    ("seeds: [0, 1]\n\tmodels: [nvae]\n", ":2:1: not valid YAML"),
    ("seeds: [0, 1\nmodels: [nvae]\n", ":2:7: not valid YAML"),
])
def test_yaml_syntax_errors_name_file_and_line(tmp_path, text, where):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{path}{where}"):
        load_yaml(path)
    out = subprocess.run([sys.executable, "scripts/check_config.py", "--configfile", str(path)],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and f"{path}{where}" in out.stderr
    if "\t" in text:
        assert "tab" in out.stderr


@pytest.mark.parametrize("config,words", [
    (["data={processed_dir: README.md}"], ["data.processed_dir", "is a file, not a directory"]),
    (["train={lr: -1}"], ["train.lr"]),
])
def test_snakemake_refuses_before_any_job_and_records_nothing(tmp_path, config, words):
    root = tmp_path / "wf"
    root.mkdir()
    for rel in ("Snakefile", "params.yaml", "workflow", "scripts", "src", "profiles", "README.md"):
        src = REPO_ROOT / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / rel)
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--configfile",
                          "profiles/quick/params.yaml", "--config", *config], cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert all(w in out.stderr + out.stdout for w in words), out.stderr[-2000:]
    assert not (root / "data").exists() and not (root / "results").exists()
    assert not list((root / ".snakemake").glob("metadata/*"))
