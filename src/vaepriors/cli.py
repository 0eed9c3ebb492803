"""What every script shares: its own arguments, the params.yaml section flags, logging to stderr."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .config import ConfigError, parse_section, parse_sections, parse_values, run_values, section_from_flags


def family_name(name: str) -> str:
    """argparse type of a family argument: a registered name, else the registry's message."""
    from . import families

    try:
        return families.get(name).name
    except families.UnknownFamilyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_script(parser: argparse.ArgumentParser, argv=None, sections: Sequence[str] = (),
                 from_params: bool = False):
    """Parse the script's own arguments; the rest are flags of ``sections`` of params.yaml, as
    Snakemake and DVC pass them. Returns (args, cfg): cfg is the section's values for one section,
    {section: values} for several, {} for none. ``from_params``: with no flags at all, read the
    section from params.yaml (a script run by hand). A bad flag exits with the key named."""
    parser.add_argument("--log-level", default="INFO")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if not sections:
            if rest:
                parser.error(f"unrecognised arguments: {' '.join(rest)}")
            cfg = {}
        elif len(sections) == 1:
            read = section_from_flags if from_params else parse_section
            cfg = read(rest, sections[0])
        else:
            cfg = parse_sections(rest, sections)
    except ConfigError as exc:
        parser.error(str(exc))
    return args, cfg


def parse_run_script(parser: argparse.ArgumentParser, argv, stage: str, family_of):
    """A per-run script (train, evaluate): its run values come as JSON (``--settings``, what the
    Snakemake rules pass: exactly the values the run uses, validated once, with ``--threads``
    apart) or, from DVC, as the flags of whole sections (``--threads`` among them), reduced here
    to the same values. ``family_of(args)`` names the family. Returns (args, values by section,
    the stage's section carrying ``threads``)."""
    tokens = sys.argv[1:] if argv is None else [str(t) for t in argv]
    if not any(t == "--settings" or t.startswith("--settings=") for t in tokens):
        sections = ["train", "model"] if stage == "train" else ["evaluate"]
        args, cfg = parse_script(parser, tokens, sections)
        cfg = cfg if len(sections) > 1 else {sections[0]: cfg}
        values = run_values(cfg, stage, family_of(args))
        values[stage]["threads"] = cfg[stage]["threads"]
        return args, values
    parser.add_argument("--settings", required=True,
                        help="the run's values as JSON (vaepriors.config.run_values)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args, _ = parse_script(parser, tokens)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    try:
        values = parse_values(args.settings, stage, family_of(args))
    except ConfigError as exc:
        parser.error(str(exc))
    values[stage]["threads"] = args.threads
    return args, values
