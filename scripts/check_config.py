#!/usr/bin/env python
"""Check a configuration before running it, as the pipeline will read it: params.yaml, then each
--configfile, then --config overrides (Snakemake's order). Reports a YAML syntax error with its
file, line and column (Snakemake's own message names neither), every invalid key and every path
key whose directory cannot serve. Exit status 0 when the configuration is valid.

  scripts/check_config.py [--configfile FILE ...] [--config KEY=VALUE ...]
"""

import argparse
import sys

import yaml

from vaepriors import ablation
from vaepriors.config import (
    REPO_ROOT,
    ConfigError,
    apply_overrides,
    check_paths,
    deep_merge,
    load_schema,
    load_yaml,
    validate,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(REPO_ROOT / "params.yaml"), help=argparse.SUPPRESS)
    parser.add_argument("--configfile", nargs="+", default=[], metavar="FILE")
    parser.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    files = [args.params, *args.configfile]
    where = " + ".join(files) + (" + --config" if args.config else "")
    try:
        cfg: dict = {}
        for path in files:
            cfg = deep_merge(cfg, load_yaml(path))
        overrides = {}
        for item in args.config:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--config {item!r}: expected KEY=VALUE")
            try:
                overrides[key] = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ConfigError(f"--config {key}: not valid YAML: {exc}") from None
        schema = load_schema()
        apply_overrides(cfg, overrides, schema)
        validate(cfg, schema, where=where)
        check_paths(cfg, schema, where=where)
        ablation.check(cfg)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{where}: valid ({len(cfg['models'])} families, {len(cfg['latent_dims'])} latent dims, "
          f"{len(cfg['seeds'])} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
