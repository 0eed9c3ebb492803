"""Stability and speed of the two spherical posteriors, von Mises-Fisher and Power Spherical.

One training-like step per cell: a batch of float32 (loc, kappa) with gradients, rsample, the KL to
the uniform prior plus a linear function of z, backward. Reported per ambient dimension m and
concentration kappa: the median step time and the fraction of rows whose draw, loss or gradient is
not finite.

    PYTHONPATH=src python benchmarks/bench_spherical.py [--rows 64] [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.distributions import kl_divergence

from vaepriors.config import cpu_model
from vaepriors.distributions.power_spherical import PowerSpherical
from vaepriors.distributions.sphere import HypersphericalUniform
from vaepriors.distributions.vmf import VonMisesFisher

DIMS = (3, 11, 65, 513)
KAPPAS = (1e-2, 1.0, 1e2, 1e4, 1e5)
FAMILIES = {"vMF": VonMisesFisher, "PowerSpherical": PowerSpherical}


def step(cls, m: int, kappa: float, rows: int, generator: torch.Generator) -> tuple[float, float]:
    """(seconds, fraction of rows with a non-finite draw, loss or gradient) of one step."""
    loc = torch.nn.functional.normalize(torch.randn(rows, m, generator=generator), dim=-1).requires_grad_()
    concentration = torch.full((rows,), kappa, requires_grad=True)
    direction = torch.randn(m, generator=generator)
    start = time.perf_counter()
    q = cls(loc, concentration, validate_args=False)
    z = q.rsample()
    loss = kl_divergence(q, HypersphericalUniform(m)) + z @ direction
    loss.sum().backward()
    seconds = time.perf_counter() - start
    finite = (torch.isfinite(z).all(-1) & torch.isfinite(loss) & torch.isfinite(loc.grad).all(-1)
              & torch.isfinite(concentration.grad))
    return seconds, 1.0 - float(finite.float().mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64, help="batch rows per step (training batch size)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per cell (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    print(f"CPU: {cpu_model()}; torch {torch.__version__}, {args.threads} thread(s), float32, "
          f"{args.rows} rows per step, median of {args.repeats} steps")
    print(f"{'m':>5} {'kappa':>8} | " + " | ".join(f"{name:>14} ms  non-finite" for name in FAMILIES))
    for m in DIMS:
        for kappa in KAPPAS:
            cells = []
            for cls in FAMILIES.values():
                step(cls, m, kappa, args.rows, generator)  # warm-up (first-use compilation, caches)
                runs = [step(cls, m, kappa, args.rows, generator) for _ in range(args.repeats)]
                ms = 1e3 * statistics.median(r[0] for r in runs)
                bad = statistics.fmean(r[1] for r in runs)
                cells.append(f"{ms:>17.3f} {bad:>11.4f}")
            print(f"{m:>5} {kappa:>8.0e} | " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
