"""Are trained weights Gaussian? Normal, Laplace and Student-t fits to each layer's weights,
judged on held-out weights, at initialisation and after training.

Protocol per layer (the weight matrix of every Linear layer; biases are too few to fit):
  * the weights are split at random into two halves (seeded);
  * each family is fitted by maximum likelihood (scipy.stats ``fit``) on the first half;
  * the second half scores it: mean log-density per weight (nats; higher is better) and the
    Kolmogorov-Smirnov statistic of the held-out half against the fitted CDF (lower is better).
Held-out scoring keeps the three-parameter Student-t from winning by its extra parameter alone.

Initial weights come from rebuilding the model exactly as training did:
``torch.manual_seed(seed)`` then ``vaepriors.training.run.model_for(...)``; the rebuild is checked
against the trained checkpoint's shapes, and determinism of the rebuild is checked by building twice.
PyTorch's default Linear initialisation is uniform, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so at
initialisation none of the three families is the true one: the initial rows are the baseline the
trained weights move away from.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

FAMILIES = {"norm": stats.norm, "laplace": stats.laplace, "t": stats.t}
FAMILY_LABELS = {"norm": "Normal", "laplace": "Laplace", "t": "Student-t"}


def fit_families(values: np.ndarray, seed: int = 0, max_fit: int = 0) -> dict[str, dict]:
    """Fit every family on a random half of ``values`` and score it on the other half.

    ``max_fit`` > 0 caps each half (a random subset) to bound the cost of the Student-t fit.
    Returns {family: {"params": tuple, "heldout_loglik": float, "ks": float, "n_fit", "n_heldout"}}.
    """
    w = np.asarray(values, dtype=np.float64).ravel()
    if len(w) < 4:
        raise ValueError(f"need at least 4 values to fit and hold out, got {len(w)}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(w))
    half = len(w) // 2
    fit, held = w[perm[:half]], w[perm[half:]]
    if max_fit:
        fit, held = fit[:max_fit], held[:max_fit]
    out, logpdfs = {}, {}
    for name, family in FAMILIES.items():
        params = _fit(name, family, fit)
        logpdfs[name] = family.logpdf(held, *params)
        out[name] = {
            "params": tuple(float(p) for p in params),
            "heldout_loglik": float(np.mean(logpdfs[name])),
            "ks": float(stats.kstest(held, family.cdf, args=params).statistic),
            "n_fit": len(fit),
            "n_heldout": len(held),
        }
    for name in FAMILIES:
        # Paired difference to the Normal on the same held-out weights, with its standard error.
        diff = logpdfs[name] - logpdfs["norm"]
        out[name]["gain_vs_norm"] = float(diff.mean())
        out[name]["gain_vs_norm_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return out


def _fit(name, family, x):
    if name == "t":
        # Start from the Normal fit with a moderate df; scipy's default start can wander.
        loc, scale = float(np.mean(x)), float(np.std(x)) or 1.0
        df, loc, scale = family.fit(x, 5.0, loc=loc, scale=scale)
        return df, loc, scale
    return family.fit(x)


SIGNIFICANCE_SE = 2.0  # a family must beat the Normal by this many standard errors to replace it
MIN_GAIN = 1e-3  # ... and by at least this many nats per weight (a Student-t with df -> inf ties)


def best_family(fits: dict[str, dict], key: str = "heldout_loglik") -> str:
    """The family with the best held-out score. The Normal is the default: another family replaces
    it only when its paired held-out gain exceeds SIGNIFICANCE_SE standard errors and MIN_GAIN
    nats per weight (a Student-t with huge df is the Normal, and must not win a tie by round-off)."""
    if key == "ks":
        return min(fits, key=lambda f: fits[f]["ks"])
    best = max(fits, key=lambda f: fits[f][key])
    if best != "norm" and "norm" in fits and "gain_vs_norm" in fits[best]:
        gain = fits[best]["gain_vs_norm"]
        if gain <= SIGNIFICANCE_SE * fits[best]["gain_vs_norm_se"] or gain < MIN_GAIN:
            return "norm"
    return best


def linear_weights(model) -> list[tuple[str, np.ndarray]]:
    """(name, weight matrix) of every Linear layer, in module order (encoder, heads, decoder)."""
    import torch

    out = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            out.append((name, module.weight.detach().cpu().double().numpy()))
    # Data-flow order: encoder body, heads, decoder (module registration puts the decoder first).
    stage = lambda name: 0 if name.startswith("body") else 2 if name.startswith("decoder") else 1
    return sorted(out, key=lambda item: stage(item[0]))


def pretty_layer(layer: str, shape: str | None = None) -> str:
    """'body.2' -> 'encoder 2', 'decoder.0' -> 'decoder 1', heads keep their name; + 'in→out'."""
    parts = layer.split(".")
    if parts[0] in ("body", "decoder") and len(parts) == 2 and parts[1].isdigit():
        name = f"{'encoder' if parts[0] == 'body' else 'decoder'} {int(parts[1]) // 2 + 1}"
    else:
        name = layer.replace("_", " ")
    if shape:
        n_out, n_in = shape.split("x")
        name += f" ({n_in}→{n_out})"
    return name


def initial_model(trained, seed: int, n_classes: int, pixel_mean=None):
    """The model as training built it before its first step (same seed, same constructor).

    ``torch.manual_seed(seed)`` then the family's constructor is the exact sequence of
    ``vaepriors.training.run.train_run`` (its ``model_for`` calls the constructor with the run's
    configuration, which the checkpoint's ``init_kwargs`` record, component counts included, so
    ``n_classes`` is not needed); nothing else draws from the global generator between the two, so
    the rebuild reproduces the initial weights bit for bit. ``pixel_mean`` (the mean
    of x_train / 255) also reproduces the decoder's output bias, which training sets from it. Raises
    if the rebuilt architecture differs from the trained one or if two rebuilds differ."""
    import torch

    from .. import families

    kwargs = trained.init_kwargs()

    def build():
        torch.manual_seed(seed)
        model = families.get(trained.name)(**kwargs)
        if pixel_mean is not None:
            model.init_output_bias(torch.as_tensor(pixel_mean, dtype=torch.float32))
        return model

    first, second = build(), build()
    a, b = first.state_dict(), second.state_dict()
    if any(not torch.equal(a[k], b[k]) for k in a):
        raise RuntimeError("rebuilding the initial model is not deterministic")
    # Parameters only: buffers such as the AE's ex-post GMM are sized after training.
    a, t = dict(first.named_parameters()), dict(trained.named_parameters())
    mismatch = sorted(set(a) ^ set(t)) + [k for k in t if k in a and a[k].shape != t[k].shape]
    if mismatch:
        raise RuntimeError(f"rebuilt model does not match the trained one at {mismatch}")
    return first


def layer_rows(net, state: str, fit_seed: int, max_fit: int = 0, **key) -> tuple[list[dict], dict]:
    """Table rows (one per layer and family) and the raw weights per layer, for one model state."""
    rows, weights = [], {}
    for i, (layer, w) in enumerate(linear_weights(net)):
        weights[layer] = w.ravel()
        if w.size < 100:
            continue  # e.g. a 1-output head: too few weights for a held-out comparison
        fits = fit_families(w, seed=fit_seed + i, max_fit=max_fit)
        best = best_family(fits)
        for family, r in fits.items():
            rows.append({**key, "state": state, "layer": layer, "shape": "x".join(map(str, w.shape)),
                         "n_weights": int(w.size), "family": family,
                         "params": " ".join(f"{p:.4g}" for p in r["params"]),
                         "heldout_loglik": r["heldout_loglik"], "ks": r["ks"],
                         "gain_vs_norm": r["gain_vs_norm"], "gain_vs_norm_se": r["gain_vs_norm_se"],
                         "n_fit": r["n_fit"], "n_heldout": r["n_heldout"],
                         "best_by_loglik": family == best})
    return rows, weights


def weights_markdown(table: pd.DataFrame) -> str:
    """One block per dataset and model: rows layer x state, columns per family (loglik / KS)."""
    lines = []
    fams = [f for f in FAMILIES if f in set(table["family"])]
    for (dataset, model), block in table.groupby(["dataset", "model"], sort=False):
        dim, seed = int(block["latent_dim"].iloc[0]), int(block["seed"].iloc[0])
        lines += [f"## {dataset}: {model} (d = {dim}, seed {seed})", "",
                  "Held-out mean log-density per weight (nats, higher is better) / KS statistic "
                  "(lower is better); **bold** = best by held-out log-likelihood (another family replaces the "
                  f"Normal only if its paired gain exceeds {SIGNIFICANCE_SE:g} standard errors and "
                  f"{MIN_GAIN:g} nats per weight).", ""]
        head = "| layer | shape | state | " + " | ".join(FAMILY_LABELS[f] for f in fams) + " | Student-t df |"
        lines += [head, "|---" * (len(fams) + 4) + "|"]
        for (layer, state), rows in block.groupby(["layer", "state"], sort=False):
            rows = rows.set_index("family")
            best = rows.index[rows["best_by_loglik"].astype(bool)][0] if rows["best_by_loglik"].any() \
                else rows["heldout_loglik"].idxmax()
            cells = []
            for f in fams:
                text = f"{rows.loc[f, 'heldout_loglik']:.3f} / {rows.loc[f, 'ks']:.3f}"
                cells.append(f"**{text}**" if f == best else text)
            df = rows.loc["t", "params"].split()[0] if "t" in rows.index else ""
            if df and float(df) > 1e4:
                df = "> 1e4 (≈ Normal)"
            lines.append(f"| {layer} | {rows['shape'].iloc[0]} | {state} | " + " | ".join(cells)
                         + f" | {df} |")
        lines.append("")
    return "\n".join(lines) if lines else "No weights were fitted.\n"


def plot_weights(weights: dict, fits: pd.DataFrame, out: str | Path, state: str,
                 title: str = "", bins: int = 80) -> list[Path]:
    """Rows = models, columns = layers: weight histogram (log density axis, so tails show) and
    the three fitted densities. ``weights[model][layer]`` are raw values; ``fits`` the table rows."""
    from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

    from . import style

    models = style.ordered_models(weights)
    ncols = max(len(weights[m]) for m in models)
    fig, axes = style.figure(len(models), ncols, panel=(2.3, 1.9))
    for r, model in enumerate(models):
        for c in range(ncols):
            ax = axes[r, c]
            layers = list(weights[model])
            if c >= len(layers):
                ax.axis("off")
                continue
            layer = layers[c]
            w = weights[model][layer]
            lim = np.quantile(np.abs(w), 0.999) * 1.15 or 1.0
            nb = int(np.clip(np.sqrt(len(w)), 10, bins))
            edges = np.linspace(-lim, lim, nb + 1)
            dens, _ = np.histogram(w, bins=edges, density=True)
            # One filled step patch instead of a bar per bin: same picture, far cheaper to draw.
            ax.stairs(np.where(dens > 0, dens, np.nan), edges, fill=True, color="#bbbbbb",
                      label="weights (histogram)")
            sel = fits[(fits["model"] == model) & (fits["layer"] == layer) & (fits["state"] == state)]
            grid = np.linspace(-lim, lim, 400)
            for family in FAMILIES:
                row = sel[sel["family"] == family]
                if row.empty:
                    continue
                params = [float(p) for p in row["params"].iloc[0].split()]
                st = {k: v for k, v in style.FIT_STYLES[family].items()}
                ax.plot(grid, FAMILIES[family].pdf(grid, *params), linewidth=1.1, **st)
            ax.set_yscale("log")
            hist_max = float(np.nanmax(dens)) if np.isfinite(dens).any() and dens.max() > 0 else 1.0
            ax.set_ylim(hist_max * 1e-4, hist_max * 3)
            ax.yaxis.set_major_locator(LogLocator(numticks=4))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_locator(MaxNLocator(3))
            ax.grid(False)
            ax.set_xlim(-lim, lim)
            shape = sel["shape"].iloc[0] if not sel.empty else None
            best = "\ntoo few weights to fit"
            if not sel.empty and sel["best_by_loglik"].any():
                b = sel[sel["best_by_loglik"].astype(bool)]["family"].iloc[0]
                best = f"\n{len(w)} weights; best held-out: {FAMILY_LABELS[b]}"
            ax.set_title(f"{style.model_label(model)}: {pretty_layer(layer, shape)}{best}", fontsize=7)
            if r == len(models) - 1 or c >= len(list(weights[models[min(r + 1, len(models) - 1)]])):
                ax.set_xlabel("weight value")
            if c == 0:
                ax.set_ylabel("density (log scale)")
            ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=4)
    return style.save(fig, out)


def plot_heldout_gain(table: pd.DataFrame, out: str | Path, title: str = "") -> list[Path]:
    """Held-out log-likelihood per weight of Laplace and Student-t minus Normal, per layer, at
    initialisation and after training (one panel per model). Positive = heavier tails fit better."""
    from . import style

    models = style.ordered_models(table["model"].unique())
    fig, axes = style.figure(1, len(models), panel=(3.0, 2.6), sharey=True)
    for ax, model in zip(axes[0], models):
        block = table[table["model"] == model]
        layers = list(dict.fromkeys(block["layer"]))
        x = np.arange(len(layers))
        width = 0.2
        offset = -1.5
        for state, hatch in (("init", "//"), ("trained", "")):
            for family in ("laplace", "t"):
                gains = []
                for layer in layers:
                    rows = block[(block["layer"] == layer) & (block["state"] == state)].set_index("family")
                    gains.append(rows.loc[family, "heldout_loglik"] - rows.loc["norm", "heldout_loglik"]
                                 if not rows.empty else math.nan)
                st = style.FIT_STYLES[family]
                ax.bar(x + offset * width, gains, width, color="white" if state == "init" else st["color"],
                       edgecolor=st["color"], hatch=hatch, linewidth=0.8,
                       label=f"{st['label']} − Normal, {'initial' if state == 'init' else 'trained'}")
                offset += 1
            ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, [pretty_layer(layer) for layer in layers], rotation=60, ha="right", fontsize=6)
        ax.set_title(style.model_label(model))
        ax.grid(axis="x", visible=False)
    axes[0, 0].set_ylabel("held-out log-lik. gain over Normal\n(nats per weight)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=2)
    return style.save(fig, out)
