"""Figure 4: samples from each model's prior and test reconstructions, as image grids.

Samples: z ~ p(z) (N-VAE: N(0, I); S-VAE: uniform on S^d; GMM-VAE: its learned mixture; AE: the
ex-post GMM fitted on its training codes, i.e. ``model.prior()``), decoded to Bernoulli means
sigmoid(logits). Reconstructions: the Bernoulli means decoded from the posterior mean (the code,
for the AE) of fixed-binarisation test images, one image per class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import style


def mosaic(images: np.ndarray, ncols: int, pad: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tile (n, h, w) images into one array, row-major, with ``pad`` pixels of ``fill`` between
    (NaN: drawn as a light grey frame)."""
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    nrows = int(np.ceil(n / ncols))
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), fill)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return out


def _show(ax, img):
    # Ink dark on white paper: 1 - intensity, so the mosaics print well.
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("gray").with_extremes(bad="#c8c8c8")
    ax.imshow(np.ma.masked_invalid(1 - img), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(False)


def plot_sample_grid(samples: dict, image_shape, out: str | Path, grid: int = 8,
                     title: str = "") -> list[Path]:
    """``samples[model][dim]`` = (n, D) Bernoulli means; rows = models, columns = latent dims."""
    h, w = (int(v) for v in image_shape)
    models = style.ordered_models(samples)
    dims = sorted({d for m in models for d in samples[m]})
    cell = 0.28 * grid * max(h, w) / 28 * 2.6 + 0.6
    fig, axes = style.figure(len(models), len(dims), panel=(cell, cell))
    for r, model in enumerate(models):
        for c, dim in enumerate(dims):
            ax = axes[r, c]
            if dim in samples[model]:
                imgs = np.asarray(samples[model][dim])[: grid * grid].reshape(-1, h, w)
                _show(ax, mosaic(imgs, grid))
            else:
                _show(ax, np.ones((h, w)) * 0)
            if r == 0:
                ax.set_title(f"d = {dim}")
            if c == 0:
                ax.set_ylabel(style.model_label(model))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return style.save(fig, out)


def plot_reconstructions(test_images: np.ndarray, recons: dict, image_shape, out: str | Path,
                         title: str = "") -> list[Path]:
    """``recons[model][dim]`` = (n, D) Bernoulli means of the n ``test_images`` (binary, (n, D)).
    One panel per latent dim: first row the test inputs, then one row per model."""
    h, w = (int(v) for v in image_shape)
    models = style.ordered_models(recons)
    dims = sorted({d for m in models for d in recons[m]})
    n = len(test_images)
    rows_label = ["test input (binarised)"] + [style.model_label(m) for m in models]
    width = 0.45 * n * max(w, 8) / 28 * 2.0 + 0.8
    height = 0.45 * len(rows_label) * max(h, 8) / 28 * 2.0 + 0.5
    fig, axes = style.figure(1, len(dims), panel=(width, height))
    for c, dim in enumerate(dims):
        ax = axes[0, c]
        stack = [np.asarray(test_images, np.float64)]
        for model in models:
            stack.append(np.asarray(recons[model].get(dim, np.zeros_like(stack[0]))))
        imgs = np.concatenate([s.reshape(-1, h, w) for s in stack])
        _show(ax, mosaic(imgs, n))
        pad = 1
        centers = [pad + i * (h + pad) + h / 2 for i in range(len(rows_label))]
        ax.set_yticks(centers, rows_label if c == 0 else [""] * len(rows_label), fontsize=7)
        ax.tick_params(axis="y", length=0)
        ax.set_title(f"d = {dim}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return style.save(fig, out)
