"""What every figure script shares: argument parsing with the ``${figures}`` flags, logging."""

from __future__ import annotations

import argparse
import logging

from ..config import ConfigError, parse_section
from ..threads import limit_threads


def parse(parser: argparse.ArgumentParser, argv=None, section: str | None = "figures"):
    """Parse the script's own arguments; the rest are the flags of one params.yaml section."""
    parser.add_argument("--log-level", default="INFO")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("fontTools", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cfg = {}
    if section is not None:
        try:
            cfg = parse_section(rest, section)
        except ConfigError as exc:
            parser.error(str(exc))
    elif rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    limit_threads(cfg.get("threads", 1))  # as many as the rule declares (1 for plotting rules)
    return args, cfg
