"""Figure 5: training curves (ELBO, reconstruction and KL by epoch) per model and latent dim.

Curves are the per-epoch validation values of history.csv (the fixed binarisation of the
validation split, beta = 1, one posterior sample per point): the quantity early stopping tracks.
Seeds stop at different epochs (early stopping); the mean and the +-1 sd band at an epoch use the
seeds still running at that epoch. A family without a KL term (``has_kl = False``: the AE)
appears in the reconstruction panel only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import families
from . import style

PANELS = [
    ("elbo", "ELBO"),
    ("rec", "reconstruction −log p(x|z)"),
    ("kl", "KL(q(z|x) ‖ p(z))"),
]


def read_histories(paths) -> pd.DataFrame:
    """Concatenate history.csv files of runs laid out as .../{model}/d{dim}/s{seed}/history.csv."""
    frames = []
    for path in paths:
        path = Path(path)
        seed_dir, dim_dir, model_dir = path.parent, path.parent.parent, path.parent.parent.parent
        df = pd.read_csv(path)
        df["model"] = model_dir.name
        df["latent_dim"] = int(dim_dir.name.lstrip("d"))
        df["seed"] = int(seed_dir.name.lstrip("s"))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _robust_ylim(values: list[np.ndarray], top_is_good: bool) -> tuple[float, float] | None:
    v = np.concatenate([x[np.isfinite(x)] for x in values if len(x)]) if values else np.array([])
    if len(v) == 0:
        return None
    # Ignore the first, untrained epochs of the worst curve: they would flatten every other curve.
    lo, hi = (np.quantile(v, 0.05), v.max()) if top_is_good else (v.min(), np.quantile(v, 0.95))
    span = hi - lo or 1.0
    return lo - 0.08 * span, hi + 0.08 * span


def plot_training_curves(hist: pd.DataFrame, out: str | Path, split: str = "val",
                         title: str = "") -> list[Path]:
    dims = sorted(hist["latent_dim"].unique())
    models = style.ordered_models(hist["model"].unique())
    fig, axes = style.figure(len(dims), len(PANELS), panel=(3.2, 2.3), sharex="row")
    warm = hist[hist["beta"] >= 1.0 - 1e-9]["epoch"].min() if "beta" in hist else None
    for r, dim in enumerate(dims):
        for c, (key, name) in enumerate(PANELS):
            ax = axes[r, c]
            col = f"{split}_{key}"
            plotted = []
            for model in models:
                if not families.get(model).has_kl and key != "rec":
                    continue
                sel = hist[(hist["latent_dim"] == dim) & (hist["model"] == model)]
                if sel.empty or col not in sel:
                    continue
                g = sel.groupby("epoch")[col]
                mean, sd = g.mean(), g.std().fillna(0.0)
                st = style.model_style(model)
                st["markevery"] = max(1, len(mean) // 8)
                ax.plot(mean.index, mean.values, **st)
                ax.fill_between(mean.index, mean - sd, mean + sd, color=st["color"], alpha=0.18,
                                linewidth=0)
                plotted.append(mean.values)
            lim = _robust_ylim(plotted, top_is_good=(key == "elbo"))
            if lim:
                ax.set_ylim(*lim)
            if warm is not None and np.isfinite(warm) and warm > 1:
                ax.axvline(warm, color="#888888", linewidth=0.8, linestyle=(0, (1, 2)),
                           label="end of KL warm-up")
            ax.set_ylabel(f"{'validation' if split == 'val' else 'training'} value (nats per image)",
                          fontsize=7)
            ax.set_title(f"d = {dim}: {name}")
            if r == len(dims) - 1:
                ax.set_xlabel("epoch")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=5)
    return style.save(fig, out)
