"""Latent maps of the circle toy, as Davidson et al. (2018) Figure 1 shows them: the true angles on
the circle, then the test codes of each family (first two coordinates), coloured by true angle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import style


def latent_maps(codes: dict[str, np.ndarray], angle: np.ndarray, out: str | Path, title: str = "") -> None:
    """``codes``: {panel title: (N, >= 2) codes of the test points}; ``angle`` (N,) true angles."""
    panels = {"true angle on S¹": np.stack([np.cos(angle), np.sin(angle)], -1), **codes}
    fig, axes = style.figure(1, len(panels), panel=(2.6, 2.6))
    for ax, (name, z) in zip(axes[0], panels.items()):
        ax.scatter(z[:, 0], z[:, 1], c=angle, cmap="twilight", vmin=0, vmax=2 * np.pi, s=3,
                   linewidths=0, rasterized=True)
        ax.set_title(name)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    style.save(fig, out)
