"""The one configuration (params.yaml): loading, validation, and the flags that carry it to scripts.

Snakemake rules and DVC stages hand a script one section of params.yaml as ``--key value`` flags,
in the form DVC's dictionary unpacking writes (``${train}`` -> ``--lr 0.001 --batch_size 64``):
lists become several values (an empty list disappears), ``true`` becomes a bare flag (``false``
disappears) and ``null`` becomes ``None``. Because the flags drop that type information, parsing
is driven by the schema, which also validates the result.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "params.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


# The schema marks a value that must name a registered latent family with this key; its enum is
# filled from the registry when the schema is loaded, so plugins are accepted too.
FAMILY_MARK = "x-latent-family"


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        schema = yaml.safe_load(fh)
    _fill_family_enums(schema)
    _add_family_settings(schema)
    return schema


def fill_defaults(cfg: dict, schema: dict) -> dict:
    """Set the schema's ``default`` of every key a mapping lacks, in place (what Snakemake's
    validate does from the schema file, here from the loaded schema with the families' settings)."""
    for key, sub in schema.get("properties", {}).items():
        if key not in cfg and "default" in sub:
            cfg[key] = copy.deepcopy(sub["default"])
        if isinstance(cfg.get(key), dict):
            fill_defaults(cfg[key], sub)
    return cfg


def _add_family_settings(schema: dict) -> None:
    """Every registered family's settings join the model section: their schema from the class
    (``settings_schema``), else the type of their default. Not required: a configuration without
    one runs the family at its default."""
    from . import families

    model = schema.get("properties", {}).get("model", {}).get("properties")
    if model is None:
        return
    types = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"))
    for name in families.names():
        cls = families.get(name)
        for key, default in cls.settings.items():
            if key not in model:
                model[key] = cls.settings_schema.get(key) or {
                    "type": next(t for kind, t in types if isinstance(default, kind))}


def _fill_family_enums(node: Any) -> None:
    if isinstance(node, dict):
        if node.get(FAMILY_MARK):
            from . import families

            node["enum"] = families.names()
        for value in node.values():
            _fill_family_enums(value)
    elif isinstance(node, list):
        for value in node:
            _fill_family_enums(value)


def section_schema(section: str, schema: dict | None = None) -> dict:
    schema = schema or load_schema()
    try:
        return schema["properties"][section]
    except KeyError:
        raise ConfigError(f"unknown configuration section {section!r}") from None


def _key_path(error: jsonschema.ValidationError, prefix: str) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in error.absolute_path]
    if error.validator == "required":
        # The missing key is in the message, not in the path.
        parts.append(error.message.split("'")[1])
    elif error.validator == "additionalProperties":
        parts.append(error.message.split("'")[1])
    return ".".join(parts) or "<root>"


def _message(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum" and error.schema.get(FAMILY_MARK):
        from . import families

        return families.unknown_message(error.instance)  # the same words as everywhere else
    return error.message


def _non_finite(cfg: Any, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """(key path, value) of every NaN or infinite number: JSON Schema's bounds cannot refuse NaN
    (every comparison with it is false), and no setting here is meaningful at infinity."""
    if isinstance(cfg, float) and not math.isfinite(cfg):
        yield path, cfg
    elif isinstance(cfg, Mapping):
        for key, value in cfg.items():
            yield from _non_finite(value, (*path, key))
    elif isinstance(cfg, (list, tuple)):
        for i, value in enumerate(cfg):
            yield from _non_finite(value, (*path, i))


def validate(cfg: Any, schema: dict, where: str = "params.yaml", prefix: str = "") -> None:
    """Raise ConfigError naming the first offending key of ``cfg`` (all errors listed)."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    lines = [f"{_key_path(e, prefix)}: {_message(e)}" for e in errors]
    for path, value in _non_finite(cfg):
        key = ".".join(str(p) for p in ((prefix,) if prefix else ()) + path)
        lines.append(f"{key}: {value} is not a finite number")
    if lines:
        raise ConfigError(f"invalid configuration in {where}:\n  " + "\n  ".join(lines))


# --- paths: checked before any job -------------------------------------------------------------

# The schema marks a string that names a directory with this key: "read" (must exist) or "write"
# (the directory, or the nearest folder above it that exists, must be a writable directory).
PATH_MARK = "x-path"


def _marked_paths(cfg: Any, schema: dict, path: tuple = ()) -> Iterator[tuple[tuple, str, str]]:
    if schema.get(PATH_MARK) and isinstance(cfg, str):
        yield path, cfg, schema[PATH_MARK]
    elif isinstance(cfg, Mapping):
        props = schema.get("properties", {})
        for key, value in cfg.items():
            if key in props:
                yield from _marked_paths(value, props[key], (*path, key))
    elif isinstance(cfg, (list, tuple)) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(cfg):
            yield from _marked_paths(value, schema["items"], (*path, i))


def path_keys(section: str, schema: dict | None = None) -> set[str]:
    """The keys of ``section`` that name directories (marked ``x-path`` in the schema)."""
    props = section_schema(section, schema).get("properties", {})
    return {k for k, p in props.items() if p.get(PATH_MARK) or p.get("items", {}).get(PATH_MARK)}


def _path_problem(value: str, kind: str, base: Path) -> str | None:
    path = base / value
    if path.exists() and not path.is_dir():
        return f"{value!r} is a file, not a directory"
    if kind == "read":
        return None if path.is_dir() else f"{value!r}: no such directory"
    above = path
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        return f"{value!r} cannot be created: {str(above)!r} is a file, not a directory"
    if not os.access(above, os.W_OK | os.X_OK):
        return f"{value!r}: {str(above)!r} is not writable"
    return None


def check_paths(cfg: Mapping, schema: dict, where: str = "params.yaml",
                base: str | Path | None = None) -> None:
    """Raise ConfigError naming every path key (``x-path`` in the schema) whose directory cannot
    be what the pipeline needs there; relative paths are taken from ``base`` (default: cwd)."""
    base = Path.cwd() if base is None else Path(base)
    lines = []
    for key, value, kind in _marked_paths(cfg, schema):
        problem = _path_problem(value, kind, base)
        if problem:
            lines.append(f"{'.'.join(str(k) for k in key)}: {problem}")
    if lines:
        raise ConfigError(f"invalid paths in {where}:\n  " + "\n  ".join(lines))


# --- command-line overrides: Snakemake's --config ------------------------------------------------

def _coerce(value: Any, schema: dict) -> Any:
    """``value`` with the strings in it read as the types ``schema`` asks for, where they parse.

    Snakemake reads the value of ``--config key=value`` as YAML without types when it is a list or
    a mapping (``seeds='[0,1]'`` gives ``['0', '1']``), so the schema supplies them. A string that
    does not parse is left as it is, for the validation to name."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if isinstance(value, Mapping) and "object" in kinds:
        props = schema.get("properties", {})
        rest = schema.get("additionalProperties")
        rest = rest if isinstance(rest, dict) else {}
        return {k: _coerce(v, props.get(k, rest)) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and "array" in kinds:
        return [_coerce(v, schema.get("items", {})) for v in value]
    if not isinstance(value, str) or "string" in kinds:
        return value
    for kind in kinds:
        parsed = _parse_scalar(value, kind)
        if parsed is not _NO_PARSE:
            return parsed
    return value


_NO_PARSE = object()


def _parse_scalar(text: str, kind: str | None) -> Any:
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return _NO_PARSE
    if kind == "number":
        for parse in (int, float):
            try:
                return parse(text)
            except ValueError:
                pass
        # YAML's spellings: .nan, .inf (refused later as not finite, with the key named)
        parsed = yaml.safe_load(text) if text.strip() else None
        return parsed if isinstance(parsed, float) else _NO_PARSE
    if kind in ("boolean", "null", "array", "object"):
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return _NO_PARSE
        wanted = {"boolean": bool, "null": type(None), "array": list, "object": dict}[kind]
        return parsed if isinstance(parsed, wanted) else _NO_PARSE
    return _NO_PARSE


def coerce_overrides(overrides: Mapping, schema: dict | None = None) -> dict:
    """Snakemake's ``--config`` values, typed by the params schema (``'0'`` -> 0 where an integer
    is expected, ``'.nan'`` -> nan where a number is); keys outside the schema pass unchanged."""
    return _coerce(dict(overrides), schema or load_schema())


def apply_overrides(config: dict, overrides: Mapping, schema: dict | None = None) -> dict:
    """Merge the typed ``overrides`` into ``config`` in place (nested keys merge, lists replace),
    as Snakemake merges ``--config`` into the configfile's values; returns ``config``."""
    for key, value in coerce_overrides(overrides, schema).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = deep_merge(config[key], value)
        else:
            config[key] = value
    return config


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_params(*paths: str | Path) -> dict:
    """Load params.yaml and override files (later files win), then validate the result."""
    if not paths:
        paths = (REPO_ROOT / "params.yaml",)
    cfg: dict = {}
    for path in paths:
        cfg = deep_merge(cfg, load_yaml(path))
    validate(cfg, load_schema(), where=" + ".join(str(p) for p in paths))
    return cfg


def load_yaml(path: str | Path) -> dict:
    """A configuration file's mapping; a syntax error is reported with the file, line and column
    (Snakemake's own message for one names neither)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from None
    try:
        part = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        hint = " (a tab on this line: YAML indents with spaces only)" if "\t" in line else ""
        raise ConfigError(f"{where}: not valid YAML: {problem}{hint}") from None
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(part).__name__}")
    return part


# --- flags: the same text DVC's ${section} unpacking produces ----------------------------------

def _flag_value(value: Any) -> str:
    if value is None:
        return "None"
    return shlex.quote(str(value))


def to_flags(section: dict) -> str:
    """``{'lr': 0.001, 'hidden': [256, 128]}`` -> ``--lr 0.001 --hidden 256 128`` (as DVC writes)."""
    parts: list[str] = []
    for key, value in section.items():
        if isinstance(value, bool):
            if value:
                parts.append(f"--{key}")
        elif isinstance(value, (list, tuple)):
            if value:
                parts.append(f"--{key} " + " ".join(_flag_value(v) for v in value))
        elif isinstance(value, dict):
            raise ConfigError(f"nested mapping {key!r} cannot be passed as flags")
        else:
            parts.append(f"--{key} {_flag_value(value)}")
    return " ".join(parts)


def _convert(token: str, schema: dict, key: str) -> Any:
    if token == "None":
        return None
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(token)
        if kind == "number":
            return float(token)
    except ValueError:
        raise ConfigError(f"--{key}: expected {kind}, got {token!r}") from None
    if kind == "string":
        return token
    return yaml.safe_load(token)


def parse_section(tokens: Iterable[str], section: str, schema: dict | None = None) -> dict:
    """Parse ``--key value ...`` flags for one params.yaml section and validate them."""
    sub = section_schema(section, schema)
    props = sub.get("properties", {})
    values: dict[str, list[str]] = {}
    key = None
    for token in tokens:
        if token.startswith("--") and not _is_number(token):
            key = token[2:].replace("-", "_")
            if key not in props:
                raise ConfigError(f"unknown key {section}.{key} (from flag {token})")
            values[key] = []
        elif key is None:
            raise ConfigError(f"value {token!r} for section {section!r} comes before any --key")
        else:
            values[key].append(token)
    out: dict[str, Any] = {}
    for name, prop in props.items():
        kind = prop.get("type")
        if name not in values:
            # DVC drops empty lists and false booleans from the command line. An optional key
            # stays absent: its reader has the default (models.base.SHARED_DEFAULTS).
            if name not in sub.get("required", ()):
                continue
            if kind == "array":
                out[name] = []
            elif kind == "boolean":
                out[name] = False
            continue
        raw = values[name]
        if kind == "array":
            out[name] = [_convert(t, prop.get("items", {}), name) for t in raw]
        elif kind == "boolean":
            out[name] = True if not raw else bool(yaml.safe_load(raw[0]))
        elif len(raw) != 1:
            raise ConfigError(f"--{name} takes one value, got {raw!r}")
        else:
            out[name] = _convert(raw[0], prop, name)
    validate(out, sub, where=f"flags for section {section!r}", prefix=section)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


# --- a run's identity: the values it uses ------------------------------------------------------

# Keys that say how a job runs, not what it computes: never part of a run's identity.
EXECUTION_KEYS = {"train": ("threads", "seeds_per_job"), "evaluate": ("threads",)}


def run_values(cfg: Mapping, stage: str, family: str) -> dict[str, dict]:
    """The values one run of ``family`` uses in ``stage`` ("train" or "evaluate"), by section:
    what the rules hand the script (as JSON) and what decides whether a finished run is redone.
    Training uses the train section and the model keys the family reads (SHARED_SETTINGS plus
    the family's ``settings``, and SHARED_DEFAULTS where set to another value than their default,
    so that adding them left the finished runs as they were); evaluation the evaluate section,
    AE keys only for the AE."""
    from . import families
    from .models.base import SHARED_DEFAULTS, SHARED_SETTINGS

    cls = families.get(family)
    if stage == "train":
        model = {k: cfg["model"][k] for k in SHARED_SETTINGS}
        model.update({k: copy.deepcopy(cfg["model"].get(k, default)) for k, default in cls.settings.items()})
        model.update({k: copy.deepcopy(cfg["model"][k]) for k, default in SHARED_DEFAULTS.items()
                      if cfg["model"].get(k, default) != default})
        return {"train": _without(cfg["train"], EXECUTION_KEYS["train"]), "model": model}
    if stage == "evaluate":
        skip = (*EXECUTION_KEYS["evaluate"],
                *(k for k in cfg["evaluate"] if k.startswith("ae_") and k not in cls.evaluate_settings))
        return {"evaluate": _without(cfg["evaluate"], skip)}
    raise ConfigError(f"no run values for stage {stage!r} (train, evaluate)")


def _without(section: Mapping, keys: Iterable[str]) -> dict:
    keys = set(keys)
    return {k: copy.deepcopy(v) for k, v in section.items() if k not in keys}


def values_json(values: Mapping) -> str:
    """Canonical JSON of run values: the same values give the same text (Snakemake compares it)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def parse_values(text: str, stage: str, family: str, where: str = "--settings") -> dict[str, dict]:
    """Run values from their JSON (``values_json``), validated once against the params schema:
    every key the run uses present, none other, each of the right type and range."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None
    schema = load_schema()
    expected = _expected_keys(stage, family, schema)
    if not isinstance(values, dict) or set(values) != set(expected):
        raise ConfigError(f"{where}: expected the sections {sorted(expected)}, got "
                          f"{sorted(values) if isinstance(values, dict) else type(values).__name__}")
    optional = _optional_keys(stage)
    for section, keys in expected.items():
        sub = dict(section_schema(section, schema))
        sub["required"] = sorted(keys - optional.get(section, set()))
        sub["propertyNames"] = {"enum": sorted(keys | optional.get(section, set()))}
        validate(values[section], sub, where=where, prefix=section)
    return values


def _optional_keys(stage: str) -> dict[str, set]:
    """Keys run_values gives only where they differ from their default (SHARED_DEFAULTS)."""
    from .models.base import SHARED_DEFAULTS

    return {"model": set(SHARED_DEFAULTS)} if stage == "train" else {}


def _expected_keys(stage: str, family: str, schema: dict) -> dict[str, set]:
    """The keys run_values gives for ``stage`` and ``family`` (from the schema's properties)."""
    full = {s: {k: None for k in section_schema(s, schema).get("properties", {})}
            for s in ("train", "model", "evaluate")}
    return {section: set(v) for section, v in run_values(full, stage, family).items()}


def cpu_model() -> str:
    """The CPU's model name (benchmarks and results are compared per machine)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(root: str | Path = REPO_ROOT) -> str | None:
    """The commit of the checkout at ``root`` (default: the one the package runs from; None outside
    git); "+dirty" when tracked files differ from it."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.strip() else "")


def run_metadata(**extra: Any) -> dict:
    """Versions and host facts recorded next to every result."""
    import numpy
    import scipy
    import sklearn
    import torch

    from . import __version__

    meta = {
        "vaepriors": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "git_commit": git_commit(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    meta.update(extra)
    return meta


def section_from_flags(tokens: list[str], section: str) -> dict:
    """The section from its flags, or from params.yaml when none are given (a script run by hand)."""
    if tokens:
        return parse_section(tokens, section)
    return load_params()[section]


def parse_sections(tokens: Iterable[str], sections: Iterable[str]) -> dict[str, dict]:
    """Split flags of several sections (``${train} ${model}``) by key owner, then parse each."""
    schema = load_schema()
    sections = list(sections)
    owner: dict[str, str] = {}
    for section in sections:
        for key in section_schema(section, schema).get("properties", {}):
            if key in owner:
                raise ConfigError(f"key {key!r} is in both {owner[key]!r} and {section!r}")
            owner[key] = section
    routed: dict[str, list[str]] = {s: [] for s in sections}
    current = None
    for token in tokens:
        if token.startswith("--") and not _is_number(token):
            key = token[2:].replace("-", "_")
            if key not in owner:
                raise ConfigError(f"unknown key {key!r} (from flag {token}); "
                                  f"expected a key of {', '.join(sections)}")
            current = owner[key]
        elif current is None:
            raise ConfigError(f"value {token!r} comes before any --key")
        routed[current].append(token)
    return {s: parse_section(routed[s], s, schema) for s in sections}
