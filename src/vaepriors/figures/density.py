"""Study 7: can a plain autoencoder sample through a density estimate of its codes, and how many
codes does that estimate need as the latent dimension grows?

For each trained AE (each latent dim d and seed) and each training-set size n:
  * codes: the encoder's codes of one seeded binarisation of the training images (the same draw
    ``vaepriors.training.run`` fits the AE's own ex-post GMM on), of the fixed-binarisation
    validation images (model selection) and test images (scoring);
  * GMM: full-covariance GaussianMixture on n random training codes, its number of components
    chosen on validation codes from the AE's own candidate list (model.ae_density_components), as
    the AE model itself does;
  * KDE: Gaussian kernel density (scikit-learn KernelDensity) on the n codes after per-coordinate
    standardisation (the Jacobian is added back, so densities are in the codes' own units), the
    bandwidth chosen on validation codes from multiples of Scott's factor n^(-1/(d+4));
  * score: mean held-out (test) log-density per latent dimension, nats, i.e. log p(z) / d;
  * sample quality: Fréchet distance (classifier features) between images decoded from
    ``fd_samples`` draws of the estimate and the test images.
KDE log-densities are evaluated exactly in float64 with a log-sum-exp over all kernels (scikit-learn's
tree-based evaluation loses accuracy when every kernel underflows, which happens for d >= 20).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import KernelDensity

from ..models.autoencoder import choose_gmm
from ..training.trainer import TrainData
from . import style

# --- estimators -------------------------------------------------------------------------------------

def kde_log_density(train: np.ndarray, query: np.ndarray, bandwidth: float,
                    chunk_elements: int = 2**24) -> np.ndarray:
    """Exact log of (1/n) sum_i N(query; train_i, h^2 I), float64, chunked over query points."""
    x = torch.as_tensor(np.asarray(train, np.float64))
    q = torch.as_tensor(np.asarray(query, np.float64))
    n, d = x.shape
    step = max(1, chunk_elements // max(n, 1))
    const = -math.log(n) - 0.5 * d * math.log(2 * math.pi * bandwidth**2)
    out = []
    for s in range(0, len(q), step):
        d2 = torch.cdist(q[s : s + step], x).pow(2)
        out.append(torch.logsumexp(-d2 / (2 * bandwidth**2), dim=1) + const)
    return torch.cat(out).numpy() if out else np.zeros(0)


class StandardisedKDE:
    """A Gaussian KDE on per-coordinate standardised codes, scored in the original units."""

    def __init__(self, codes: np.ndarray, bandwidth: float):
        codes = np.asarray(codes, np.float64)
        self.mean = codes.mean(0)
        self.scale = codes.std(0) + 1e-12
        self.bandwidth = float(bandwidth)
        self.kde = KernelDensity(kernel="gaussian", bandwidth=self.bandwidth).fit(self._std(codes))
        self._data = self._std(codes)

    def _std(self, z):
        return (np.asarray(z, np.float64) - self.mean) / self.scale

    def log_density(self, z: np.ndarray) -> np.ndarray:
        return kde_log_density(self._data, self._std(z), self.bandwidth) - np.log(self.scale).sum()

    def sample(self, n: int, seed: int) -> np.ndarray:
        return self.kde.sample(n, random_state=seed) * self.scale + self.mean


def scott_factor(n: int, d: int) -> float:
    return float(n) ** (-1.0 / (d + 4))


def fit_kde(train: np.ndarray, val: np.ndarray, factors: list[float]) -> tuple[StandardisedKDE, dict]:
    n, d = train.shape
    scores = {}
    best = None
    for f in factors:
        kde = StandardisedKDE(train, f * scott_factor(n, d))
        scores[f] = float(np.mean(kde.log_density(val)))
        if best is None or scores[f] > scores[best[0]]:
            best = (f, kde)
    return best[1], scores


def study_sizes(sizes: list[int], n_train: int) -> list[int]:
    """Configured sizes (0 = all) clipped to the training set, unique, ascending."""
    return sorted({n_train if (s == 0 or s >= n_train) else int(s) for s in sizes})


@torch.no_grad()
def codes(model, x: torch.Tensor, batch: int = 2000) -> np.ndarray:
    return model.eval().embed_all(x, batch)


def ae_codes(model, arrays: dict, seed: int) -> dict[str, np.ndarray]:
    """Training codes of the seeded observation (binarisation) the evaluation fits the AE's density
    on, and val/test codes."""
    gen = torch.Generator().manual_seed(seed)
    x_train = model.likelihood.observe(TrainData.from_arrays(arrays).x_train, gen)
    return {
        "train": codes(model, x_train),
        "val": codes(model, torch.from_numpy(np.asarray(arrays["xb_val"])).float()),
        "test": codes(model, torch.from_numpy(np.asarray(arrays["xb_test"])).float()),
    }


def density_rows(model, arrays: dict, seed: int, sizes: list[int], candidates: list[int],
                 kde_factors: list[float], max_eval: int = 0, reference=None,
                 fd_samples: int = 1000) -> list[dict]:
    """Rows (n, estimator, selection, held-out log-density per dim, FD) for one trained AE."""
    from .frechet import decode_means

    z = ae_codes(model, arrays, seed)
    d = z["train"].shape[1]
    rng = np.random.default_rng(seed)
    val, test = z["val"], z["test"]
    if max_eval:
        val = val[rng.permutation(len(val))[:max_eval]]
        test = test[rng.permutation(len(test))[:max_eval]]
    rows = []
    for n in study_sizes(sizes, len(z["train"])):
        sub = z["train"][np.random.default_rng([seed, n]).permutation(len(z["train"]))[:n]]
        gmm, gscores = choose_gmm(sub, val, candidates, seed)
        kde, kscores = fit_kde(sub, val, kde_factors)
        for name, selection in (
            ("gmm", {"components": int(gmm.n_components), "val_scores": gscores}),
            ("kde", {"bandwidth": kde.bandwidth,
                          "bandwidth_factor": max(kscores, key=kscores.get), "val_scores": kscores}),
        ):
            if name == "gmm":
                test_ld = gmm.score_samples(test)
                val_ld = gmm.score_samples(val)
            else:
                test_ld = kde.log_density(test)
                val_ld = kde.log_density(val)
            row = {"latent_dim": int(model.latent_dim), "seed": int(seed), "n": int(n),
                   "n_train": len(z["train"]), "estimator": name,
                   "components": selection.get("components", np.nan),
                   "bandwidth": selection.get("bandwidth", np.nan),
                   "val_logdens_per_dim": float(np.mean(val_ld)) / d,
                   "test_logdens_per_dim": float(np.mean(test_ld)) / d,
                   "n_test_codes": len(test)}
            if reference is not None:
                if name == "gmm":
                    zs = gmm.sample(fd_samples)[0]
                    zs = zs[np.random.default_rng(seed).permutation(len(zs))]  # sklearn groups by component
                else:
                    zs = kde.sample(fd_samples, seed)
                images = decode_means(model, torch.as_tensor(zs, dtype=torch.float32))
                row["fd"] = reference.score(images)
                row["fd_floor"] = reference.floor
            rows.append(row)
    return rows


# --- figure -----------------------------------------------------------------------------------------

def _dim_styles(dims):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    n = max(len(dims) - 1, 1)
    # viridis is monotonic in lightness: dims stay ordered when printed in gray.
    return {d: {"color": cmap(0.85 * i / n), "marker": markers[i % len(markers)]}
            for i, d in enumerate(dims)}


def plot_density_study(table: pd.DataFrame, out: str | Path, title: str = "") -> list[Path]:
    """Held-out log-density per latent dimension against n (absolute, and relative to the same AE's
    GMM on all codes), and FD against n. Lines per latent dim (colour/marker), GMM solid and KDE
    dashed; mean over seeds, error bars = sd."""
    has_fd = "fd" in table and table["fd"].notna().any()
    table = table.copy()
    # Relative score: each run's log-density minus that of its own GMM on all codes. Absolute
    # log-densities depend on each AE's code scale; the difference does not, so d can be compared.
    full = table[(table["estimator"] == "gmm") & (table["n"] == table["n_train"])]
    ref = full.set_index(["latent_dim", "seed"])["test_logdens_per_dim"]
    table["rel"] = table["test_logdens_per_dim"] - [ref.get((d, s), np.nan)
                                                    for d, s in zip(table["latent_dim"], table["seed"])]
    fig, axes = style.figure(1, 3 if has_fd else 2, panel=(3.5, 3.1))
    dims = sorted(table["latent_dim"].unique())
    dstyles = _dim_styles(dims)
    agg = (table.groupby(["latent_dim", "estimator", "n"])
           .agg(ld=("test_logdens_per_dim", "mean"), ld_sd=("test_logdens_per_dim", "std"),
                rel=("rel", "mean"), rel_sd=("rel", "std"),
                fd=("fd", "mean") if has_fd else ("n", "size"),
                fd_sd=("fd", "std") if has_fd else ("n", "size"))
           .reset_index())
    lines = {"gmm": "-", "kde": "--"}
    cols = [("ld", "held-out log p(z) per latent dim\n(nats per dimension)"),
            ("rel", "relative to the GMM on all codes\n(nats per dimension)")]
    if has_fd:
        cols.append(("fd", "Fréchet distance to test images\n(squared classifier-feature units)"))
    for ax, (key, ylabel) in zip(axes[0], cols):
        for d in dims:
            for est in ("gmm", "kde"):
                sel = agg[(agg["latent_dim"] == d) & (agg["estimator"] == est)].sort_values("n")
                if sel.empty:
                    continue
                ax.errorbar(sel["n"], sel[key], yerr=sel[f"{key}_sd"].fillna(0), linestyle=lines[est],
                            markeredgecolor="#222222", markeredgewidth=0.5,
                            label=f"d = {d}" if est == "gmm" else None, **dstyles[d])
        ax.set_xscale("log")
        ns = sorted(table["n"].unique())
        ax.set_xticks(ns, [f"{n}\n(all)" if n == table["n_train"].max() else str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("training codes used n")
        ax.set_ylabel(ylabel)
        if key == "rel":
            ax.axhline(0.0, color="#777777", linewidth=0.8)
        if key == "fd" and "fd_floor" in table:
            ax.axhline(float(table["fd_floor"].mean()), color="#777777", linestyle=(0, (1, 1)),
                       label="real images (floor)")
    # Line-style key for the estimators.
    for est, name in (("gmm", "GMM (K by validation)"), ("kde", "KDE (bandwidth by validation)")):
        axes[0, 0].plot([], [], color="black", linestyle=lines[est], label=name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=4)
    return style.save(fig, out)
