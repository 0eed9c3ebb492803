"""Stability and speed of the two spherical posteriors, von Mises-Fisher and Power Spherical, with
the diagonal Gaussian's step as the reference (vaepriors.figures.spherical, the pipeline's
`spherical_study` rule, with more steps per cell if asked).

    PYTHONPATH=src python benchmarks/bench_spherical.py [--rows 64] [--repeats 20]
"""

from __future__ import annotations

import argparse

import torch

from vaepriors.config import cpu_model
from vaepriors.figures import spherical


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64, help="batch rows per step (training batch size)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per cell (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table = spherical.study(rows=args.rows, repeats=args.repeats)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} thread(s)\n")
    print(spherical.markdown(table))
    print(spherical.paragraph(table, cpu_model()))
    print("\nstep time over the Gaussian's, median over cells:",
          ", ".join(f"{k} {v:.2f}x" for k, v in spherical.step_ratios(table).items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
