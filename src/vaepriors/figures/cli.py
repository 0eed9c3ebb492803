"""What every figure script adds to the common script set-up: quiet plotting libraries and the
rule's thread count."""

from __future__ import annotations

import argparse
import logging

from ..cli import parse_script
from ..threads import limit_threads


def parse(parser: argparse.ArgumentParser, argv=None, section: str | None = "figures"):
    """Parse the script's own arguments; the rest are the flags of one params.yaml section."""
    args, cfg = parse_script(parser, argv, (section,) if section else ())
    for noisy in ("fontTools", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    limit_threads(cfg.get("threads", 1))  # as many as the rule declares (1 for plotting rules)
    return args, cfg
