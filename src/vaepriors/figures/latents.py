"""Latent maps at d = 2: codes of the test set coloured by class.

Families in the plane R^2 are drawn as they are, with the 2-sigma contours of a Gaussian or
Gaussian-mixture prior (N-VAE: the unit circle; GMM-VAE: its components; AE: its ex-post GMM),
captioned by the family's ``prior_contour_label``. A family on the sphere (``sphere = True``: the
S-VAE) has codes on S^2 in R^3; they are drawn with the Hammer projection, which is equal-area, so
the density of points on the map is proportional to their density on the sphere and the uniform
prior looks uniform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.patches import Ellipse

CLASS_CMAP = "tab10"


# --- the projection ------------------------------------------------------------------------------

def lonlat(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude in [-pi, pi] (angle in the x1-x2 plane) and latitude in [-pi/2, pi/2] (x3 = pole)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    xyz = xyz / np.linalg.norm(xyz, axis=-1, keepdims=True)
    return np.arctan2(xyz[..., 1], xyz[..., 0]), np.arcsin(np.clip(xyz[..., 2], -1, 1))


def hammer(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hammer (Hammer-Aitoff) equal-area projection. The image of the unit sphere is the ellipse
    x^2/8 + y^2/2 <= 1, whose area 4 pi equals the sphere's: the map's Jacobian is 1 everywhere."""
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    denom = np.sqrt(1 + np.cos(lat) * np.cos(lon / 2))
    return 2 * np.sqrt(2) * np.cos(lat) * np.sin(lon / 2) / denom, np.sqrt(2) * np.sin(lat) / denom


def sphere_to_map(xyz: np.ndarray) -> np.ndarray:
    return np.stack(hammer(*lonlat(xyz)), axis=-1)


def rotation_to_front(direction: np.ndarray) -> np.ndarray:
    """A proper rotation (det +1) taking ``direction`` to e1 = (1, 0, 0), the map's centre
    (longitude 0, latitude 0). Rotations preserve area, so the map stays equal-area."""
    a = np.asarray(direction, np.float64)
    a = a / np.linalg.norm(a)
    b = np.array([1.0, 0.0, 0.0])
    v, c = np.cross(a, b), float(a @ b)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3) if c > 0 else np.diag([-1.0, -1.0, 1.0])
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)  # Rodrigues


def _graticule(ax) -> None:
    t = np.linspace(-np.pi, np.pi, 361)
    for lat in np.radians([-60, -30, 0, 30, 60]):
        ax.plot(*hammer(t, np.full_like(t, lat)), color="#cccccc", linewidth=0.5, zorder=0)
    p = np.linspace(-np.pi / 2, np.pi / 2, 181)
    for lon in np.radians([-180, -120, -60, 0, 60, 120, 180]):
        ax.plot(*hammer(np.full_like(p, lon), p), color="#cccccc", linewidth=0.5, zorder=0)
    for lat in (-60, -30, 30, 60):
        x, y = hammer(0.0, np.radians(lat))
        ax.text(x, y, f"{lat:+d}°", fontsize=6, color="#888888", ha="center", va="bottom")
    for lon in (-120, -60, 60, 120):
        x, y = hammer(np.radians(lon), 0.0)
        ax.text(x, y, f"{lon:+d}°", fontsize=6, color="#888888", ha="center", va="bottom")


# --- covariance ellipses -------------------------------------------------------------------------

def ellipse_params(cov: np.ndarray, n_sigma: float = 2.0) -> tuple[float, float, float]:
    """(width, height, angle in degrees) of the n-sigma contour of a 2x2 covariance."""
    w, v = np.linalg.eigh(np.asarray(cov, np.float64))
    w = np.clip(w, 0, None)
    angle = np.degrees(np.arctan2(v[1, 1], v[0, 1]))
    return 2 * n_sigma * np.sqrt(w[1]), 2 * n_sigma * np.sqrt(w[0]), float(angle)


def add_ellipses(ax, means, covs, weights=None, n_sigma: float = 2.0, label: str = "", **kwargs):
    means, covs = np.asarray(means), np.asarray(covs)
    weights = np.ones(len(means)) / len(means) if weights is None else np.asarray(weights)
    style = {"edgecolor": "black", "facecolor": "none", "linewidth": 1.0, "linestyle": "--"}
    style.update(kwargs)
    for i, (m, c) in enumerate(zip(means, covs)):
        width, height, angle = ellipse_params(c, n_sigma)
        ax.add_patch(Ellipse(m, width, height, angle=angle, label=label if i == 0 else None, **style))
    ax.scatter(means[:, 0], means[:, 1], marker="x", color="black", s=18, linewidths=1.0, zorder=5)
    return weights


def prior_ellipses(model) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(means, covariances, weights) of the 2-D prior's Gaussian components: a mixture's, or the
    one of a diagonal Gaussian prior; None for any other prior (the sphere's uniform)."""
    from torch.distributions import Independent, MixtureSameFamily, Normal

    prior = model.prior()
    if isinstance(prior, Independent) and isinstance(prior.base_dist, Normal):
        mean = prior.mean.detach().double().numpy()
        return mean[None], np.diag(prior.variance.detach().double().numpy())[None], np.ones(1)
    if isinstance(prior, MixtureSameFamily):
        comp = prior.component_distribution
        weights = prior.mixture_distribution.probs.detach().double().numpy()
        means = comp.mean.detach().double().numpy()
        if hasattr(comp, "covariance_matrix"):
            covs = comp.covariance_matrix.detach().double().numpy()
        else:
            covs = np.stack([np.diag(v) for v in comp.variance.detach().double().numpy()])
        return means, covs, weights
    return None


# --- the figure ----------------------------------------------------------------------------------

def _class_labels(ax, pts, y, classes, names=None):
    import matplotlib.patheffects as pe

    for k in classes:
        sel = pts[y == k]
        if len(sel) == 0:
            continue
        cx, cy = np.median(sel, axis=0)
        ax.text(cx, cy, str(names[k]) if names else str(k), fontsize=8, weight="bold", ha="center",
                va="center", zorder=6, path_effects=[pe.withStroke(linewidth=2.5, foreground="white")])


def _robust_limits(pts, extra=None, q=0.005, pad=0.08):
    lo, hi = np.quantile(pts, q, axis=0), np.quantile(pts, 1 - q, axis=0)
    if extra is not None and len(extra):
        lo, hi = np.minimum(lo, extra.min(0)), np.maximum(hi, extra.max(0))
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return lo - pad * span, hi + pad * span


def plot_latent_maps(panels: dict, y: np.ndarray, out: str | Path, title: str = "",
                     class_names: list[str] | None = None) -> list[Path]:
    """``panels[model] = {"codes": (n, 2), or (n, 3) for a family on the sphere, "ellipses":
    (means, covs, weights) or None, "ellipse_label": str}``; ``y`` the class of every code."""
    import matplotlib.pyplot as plt

    from .. import families
    from . import style

    models = style.ordered_models(panels)
    n = len(models)
    ncols = min(n, 2) if n > 1 else 1
    nrows = int(np.ceil(n / ncols))
    fig, axes = style.figure(nrows, ncols, panel=(3.6, 3.3))
    y = np.asarray(y)
    classes = np.unique(y)
    cmap = plt.get_cmap(CLASS_CMAP)
    colors = cmap(np.asarray(y) % cmap.N)
    size = float(np.clip(3000.0 / max(len(y), 1), 1.5, 12.0))  # dots visible for 300 or 10000 codes
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, model in zip(axes.flat, models):
        p = panels[model]
        codes = np.asarray(p["codes"], dtype=np.float64)
        ax.grid(False)
        if families.get(model).sphere:
            unit = codes / np.linalg.norm(codes, axis=1, keepdims=True)
            mean = unit.mean(0)
            # Centre the map on the codes' mean direction, so that clusters are not cut by the
            # map's edge (the +-180 degree meridian).
            rot = rotation_to_front(mean) if np.linalg.norm(mean) > 0.05 else np.eye(3)
            pts = sphere_to_map(unit @ rot.T)
            t = np.linspace(0, 2 * np.pi, 400)
            ax.plot(2 * np.sqrt(2) * np.cos(t), np.sqrt(2) * np.sin(t), color="black", linewidth=0.8)
            _graticule(ax)
            ax.scatter(pts[:, 0], pts[:, 1], c=colors, s=size, alpha=0.6, linewidths=0, rasterized=True)
            ax.set_xlim(-2.95, 2.95)
            ax.set_ylim(-1.5, 1.5)
            ax.set_aspect("equal")
            ax.set_xlabel("longitude (rotated frame)")
            ax.set_ylabel("latitude (rotated frame)")
            ax.set_title(f"{style.model_label(model)}: S² (uniform prior), Hammer equal-area map\n"
                         "centred on the codes' mean direction")
            for side in ("left", "bottom"):
                ax.spines[side].set_visible(False)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            pts = codes
            ax.scatter(pts[:, 0], pts[:, 1], c=colors, s=size, alpha=0.6, linewidths=0, rasterized=True)
            extra = None
            if p.get("ellipses") is not None:
                means, covs, weights = p["ellipses"]
                add_ellipses(ax, means, covs, weights)
                extra = np.asarray(means)
            lo, hi = _robust_limits(pts, extra)
            # Equal spans and an equal aspect: circles stay circles, the panel stays square.
            half, mid = (hi - lo).max() / 2, (hi + lo) / 2
            ax.set_xlim(mid[0] - half, mid[0] + half)
            ax.set_ylim(mid[1] - half, mid[1] + half)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xlabel("z₁ (latent units)")
            ax.set_ylabel("z₂ (latent units)")
            sub = f"\ndashed: {p['ellipse_label']}" if p.get("ellipses") is not None and p.get("ellipse_label") else ""
            ax.set_title(f"{style.model_label(model)}: R²{sub}")
        _class_labels(ax, pts, y, classes, class_names)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return style.save(fig, out)
