"""Stability and speed of the spherical posteriors, von Mises-Fisher and Power Spherical, with the
diagonal Gaussian as the reference step.

One training-like step per cell: a batch of float32 (loc, kappa) with gradients, rsample, the KL to
the family's prior (uniform on the sphere; N(0, I) for the Gaussian, scale kappa^(-1/2)) plus a
linear function of z, backward. Per ambient dimension m and concentration kappa: the median step
time and the fraction of rows whose draw, loss or gradient is not finite.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import torch
from torch.distributions import Independent, Normal, kl_divergence

from ..distributions.normal import DiagonalNormal
from ..distributions.power_spherical import PowerSpherical
from ..distributions.sphere import HypersphericalUniform
from ..distributions.vmf import VonMisesFisher

DIMS = (3, 11, 65, 513)
KAPPAS = (1e-2, 1.0, 1e2, 1e4, 1e5)


def _spherical(cls):
    def build(loc, kappa):
        m = loc.shape[-1]
        q = cls(torch.nn.functional.normalize(loc, dim=-1), kappa, validate_args=False)
        return q, HypersphericalUniform(m)
    return build


def _gaussian(loc, kappa):
    zero = torch.zeros(loc.shape[-1])
    return DiagonalNormal(loc, kappa.rsqrt().unsqueeze(-1).expand_as(loc)), Independent(Normal(zero, 1.0), 1)


# name -> (q, prior) from loc (rows, m) and kappa (rows,); the first is the speed reference
DISTRIBUTIONS = {"Gaussian": _gaussian, "vMF": _spherical(VonMisesFisher),
                 "Power Spherical": _spherical(PowerSpherical)}


def step(build, m: int, kappa: float, rows: int, generator: torch.Generator) -> tuple[float, np.ndarray]:
    """(seconds, per-row bool: draw, loss and gradients finite) of one step."""
    loc = torch.randn(rows, m, generator=generator).requires_grad_()
    concentration = torch.full((rows,), float(kappa), requires_grad=True)
    direction = torch.randn(m, generator=generator)
    start = time.perf_counter()
    q, prior = build(loc, concentration)
    z = q.rsample()
    loss = kl_divergence(q, prior) + z @ direction
    loss.sum().backward()
    seconds = time.perf_counter() - start
    finite = (torch.isfinite(z).all(-1) & torch.isfinite(loss) & torch.isfinite(loc.grad).all(-1)
              & torch.isfinite(concentration.grad))
    return seconds, finite.numpy()


def study(dims=DIMS, kappas=KAPPAS, rows: int = 64, repeats: int = 20, seed: int = 0) -> pd.DataFrame:
    """One row per (distribution, m, kappa): median step time (ms) over `repeats` steps after one
    warm-up, and the fraction of non-finite rows over all of them. Distributions alternate within
    each cell, so a load change on the machine hits them alike."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    out = []
    for m in dims:
        for kappa in kappas:
            times = {name: [] for name in DISTRIBUTIONS}
            finite = {name: [] for name in DISTRIBUTIONS}
            for r in range(repeats + 1):
                for name, build in DISTRIBUTIONS.items():
                    seconds, ok = step(build, m, kappa, rows, generator)
                    if r:  # the first round warms up
                        times[name].append(seconds)
                        finite[name].append(ok)
            for name in DISTRIBUTIONS:
                out.append({"distribution": name, "m": m, "kappa": kappa,
                            "step_ms": 1e3 * statistics.median(times[name]),
                            "non_finite": 1.0 - float(np.concatenate(finite[name]).mean()),
                            "rows": rows, "steps": repeats})
    return pd.DataFrame(out)


def step_ratios(table: pd.DataFrame) -> pd.Series:
    """Median over cells of each distribution's step time over the reference's (the Gaussian)."""
    wide = table.pivot_table(index=["m", "kappa"], columns="distribution", values="step_ms")
    reference = next(iter(DISTRIBUTIONS))
    return (wide.div(wide[reference], axis=0)).median()[list(DISTRIBUTIONS)]


def markdown(table: pd.DataFrame) -> str:
    wide = table.pivot_table(index=["m", "kappa"], columns="distribution", values=["step_ms", "non_finite"])
    names = list(DISTRIBUTIONS)
    lines = ["| m | κ | " + " | ".join(f"{n} ms | {n} non-finite" for n in names) + " |",
             "|---|---|" + "---|---|" * len(names)]
    for (m, kappa), row in wide.iterrows():
        cells = " | ".join(f"{row[('step_ms', n)]:.2f} | {row[('non_finite', n)]:.1%}" for n in names)
        lines.append(f"| {m} | {kappa:g} | {cells} |")
    steps, rows = int(table["steps"].iloc[0]), int(table["rows"].iloc[0])
    lines += ["", f"Median of {steps} steps of {rows} float32 rows per cell; non-finite: share of rows "
              "whose draw, loss or gradient was NaN or infinite."]
    return "\n".join(lines) + "\n"


def paragraph(table: pd.DataFrame, cpu: str = "") -> str:
    ratios = step_ratios(table)
    bad = table[table["non_finite"] > 0]
    worst = ("no non-finite draw, loss or gradient in any cell" if bad.empty else
             "non-finite values in " + ", ".join(f"{r.distribution} at m = {r.m}, κ = {r.kappa:g} "
                                                 f"({r.non_finite:.1%})" for r in bad.itertuples()))
    names = list(DISTRIBUTIONS)
    where = f" on {cpu}" if cpu else ""
    return (f"One float32 training step (draw, KL to the prior, backward) for m = "
            f"{', '.join(str(m) for m in sorted(table['m'].unique()))} and κ from "
            f"{table['kappa'].min():g} to {table['kappa'].max():g}{where}: {worst}. Median step time "
            "relative to the Gaussian's: " + ", ".join(f"{n} {ratios[n]:.2f}×" for n in names[1:]) + ".")


def figure(table: pd.DataFrame, out) -> list:
    """Step time against m (one line per distribution) and, per spherical distribution, the share
    of non-finite rows over (m, kappa). Written as PNG and PDF."""
    from . import style

    names = list(DISTRIBUTIONS)
    fig, axes = style.figure(1, len(names), panel=(3.6, 3.0))
    ax = axes[0, 0]
    for name, marker in zip(names, "osD"):
        per_m = table[table["distribution"] == name].groupby("m")["step_ms"]
        mid = per_m.median()
        ax.errorbar(mid.index, mid, yerr=[mid - per_m.min(), per_m.max() - mid], marker=marker,
                    capsize=3, label=name)
    ax.set(xscale="log", yscale="log", xlabel="ambient dimension m", ylabel="step time (ms)",
           title="step time (median over κ; bars: range)")
    ax.legend()
    kappas, dims = sorted(table["kappa"].unique()), sorted(table["m"].unique())
    for ax, name in zip(axes[0, 1:], names[1:]):
        grid = (table[table["distribution"] == name].pivot(index="m", columns="kappa", values="non_finite")
                .reindex(index=dims, columns=kappas))
        ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="Reds", aspect="auto")
        for i in range(len(dims)):
            for j in range(len(kappas)):
                ax.text(j, i, f"{grid.iloc[i, j]:.0%}", ha="center", va="center")
        ax.set_xticks(range(len(kappas)), [f"{k:g}" for k in kappas])
        ax.set_yticks(range(len(dims)), [str(m) for m in dims])
        ax.grid(False)
        ax.set(xlabel="κ", ylabel="m", title=f"{name}: non-finite rows")
    return style.save(fig, out)
