"""Does a powerful decoder make the prior irrelevant? The decoder-capacity sweep.

params.yaml's optional ``decoder_sweep`` = {sizes: {name: decoder hidden sizes}, models: [...],
latent_dims: [...]}: every listed family at every listed d is trained, with the encoder fixed
(model.hidden), once per decoder size (model.decoder_hidden), for every dataset and seed of the
configuration, and evaluated as the other runs. The table gives, per dataset, d and size, each
family's test log-likelihood (mean, sd, n), its decoder's parameter count and its gap to the
best family at that size; the paragraph says whether the spread between the families shrinks,
stays or grows from the smallest decoder to the largest. File names live here so the rules
(workflow/rules/capacity.smk) only wire them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from .config import ConfigError, deep_merge, load_schema, validate

ROOT = "results/decoder_sweep"
RUN_DIR = ROOT + "/{size}/models/{dataset}/{model}/d{dim}/s{seed}"
METRICS = ROOT + "/{size}/metrics/{dataset}/{model}/d{dim}/s{seed}.json"
OUTPUTS = ("results/tables/decoder_sweep.csv", "results/tables/decoder_sweep.md",
           "results/figures/decoder_sweep.png", "results/figures/decoder_sweep.pdf")


CIRCLE_OUTPUTS = ("results/tables/circle.csv", "results/tables/circle.md",
                  "results/figures/circle/circle_latents.png", "results/figures/circle/circle_latents.pdf")


def targets(config: Mapping) -> list[str]:
    """What `snakemake capacity` builds: the circle toy's study when the circle is among the
    datasets, the sweep's table and figure when decoder_sweep names sizes."""
    out = list(CIRCLE_OUTPUTS) if "circle" in config["datasets"] else []
    return out + (list(OUTPUTS) if sweep(config).get("sizes") else [])


def sweep(config: Mapping) -> dict:
    return dict(config.get("decoder_sweep", {}))


def size_config(config: Mapping, size: str) -> dict:
    """The whole configuration of decoder size ``size``, validated."""
    sizes = sweep(config).get("sizes", {})
    if size not in sizes:
        raise ConfigError(f"decoder_sweep.sizes: no size {size!r}")
    merged = deep_merge(dict(config), {"model": {"decoder_hidden": list(sizes[size])}})
    merged.pop("decoder_sweep", None)
    validate(merged, load_schema(), where=f"decoder_sweep.sizes.{size} merged over the configuration")
    return merged


def runs(config: Mapping) -> list[tuple[str, str, str, int, int]]:
    """(size, dataset, model, dim, seed) of every sweep run."""
    s = sweep(config)
    return [(size, ds, m, d, seed) for size in s.get("sizes", {}) for ds in config["datasets"]
            for m in s["models"] for d in s["latent_dims"] for seed in config["seeds"]]


def run_dir(size, dataset, model, dim, seed) -> str:
    return RUN_DIR.format(size=size, dataset=dataset, model=model, dim=dim, seed=seed)


def metrics_path(size, dataset, model, dim, seed) -> str:
    return METRICS.format(size=size, dataset=dataset, model=model, dim=dim, seed=seed)


# --- the table, figure and paragraph -------------------------------------------------------------

def _stats(values) -> tuple[float, float, int]:
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, sd, n


def table(rows: list[dict]):
    """rows: one per run {size, dataset, model, latent_dim, seed, decoder_parameters, loglik,
    best_val_elbo, train_elbo (at the best validation epoch), at_epoch_limit (bool)}. One row per
    (dataset, d, size, model): means, sds, n, the gap of the mean test log-likelihood to the best
    family's at that (dataset, d, size), the overfit (train minus validation ELBO at the best
    validation epoch) and how many runs stopped at the epoch limit rather than early."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["overfit"] = frame["train_elbo"] - frame["best_val_elbo"]
    out = []
    keys = ["dataset", "latent_dim", "size", "model"]
    for (ds, dim, size, model), group in frame.groupby(keys, sort=False):
        row = {"dataset": ds, "latent_dim": int(dim), "size": size, "model": model,
               "decoder_parameters": int(group["decoder_parameters"].iloc[0])}
        for col in ("loglik", "best_val_elbo", "overfit"):
            row[col], row[f"{col}_sd"], row["n"] = _stats(group[col])
        row["at_epoch_limit"] = int(group["at_epoch_limit"].sum())
        out.append(row)
    result = pd.DataFrame(out)
    best = result.groupby(["dataset", "latent_dim", "size"])["loglik"].transform("max")
    result["gap_to_best"] = result["loglik"] - best
    return result.sort_values(["dataset", "latent_dim", "decoder_parameters", "model"],
                              kind="stable").reset_index(drop=True)


def markdown(frame, budget: str = "") -> str:
    def pm(mean, sd):
        return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"

    lines = ([budget, ""] if budget else []) + [
        "| dataset | d | decoder | decoder parameters | family | n | test LL | gap to best | best val ELBO "
        "| train − val ELBO | at epoch limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        lines.append(f"| {r.dataset} | {r.latent_dim} | {r.size} | {r.decoder_parameters} | {r.model} | {r.n} "
                     f"| {pm(r.loglik, r.loglik_sd)} | {r.gap_to_best:+.2f} "
                     f"| {pm(r.best_val_elbo, r.best_val_elbo_sd)} | {pm(r.overfit, r.overfit_sd)} "
                     f"| {r.at_epoch_limit} of {r.n} |")
    text = ("\n".join(lines) + "\n\ntrain − val ELBO: the training ELBO minus the validation ELBO at "
            "the best validation epoch (nats; it grows as a decoder overfits). at epoch limit: runs that stopped at "
            "the budget's last epoch instead of early, i.e. may still have been improving.\n")
    answer = paragraph(frame)
    return text + ("\n" + answer + "\n" if answer else "")


def paragraph(frame) -> str:
    """Whether the spread between families (best minus worst mean test LL) shrinks, stays or grows
    from the smallest decoder to the largest, per dataset and d (against the standard error of that
    spread), and at which size each family's test LL peaks."""
    if frame.empty:
        return ""
    parts = []
    for (ds, dim), cell in frame.groupby(["dataset", "latent_dim"], sort=False):
        sizes = cell.sort_values("decoder_parameters")["size"].unique()
        # the same families at both ends, or the spread compares different sets
        both = set(cell[cell["size"] == sizes[0]]["model"]) & set(cell[cell["size"] == sizes[-1]]["model"])
        if len(sizes) < 2 or len(both) < 2:
            continue
        spreads = []
        for size in (sizes[0], sizes[-1]):
            at = cell[(cell["size"] == size) & cell["model"].isin(both)]
            hi, lo = at.loc[at["loglik"].idxmax()], at.loc[at["loglik"].idxmin()]
            se = _se(hi, lo, "loglik")
            spreads.append((hi["loglik"] - lo["loglik"], se, hi["model"], lo["model"]))
        (s0, se0, *_), (s1, se1, best1, worst1) = spreads
        change, se = s1 - s0, math.sqrt(se0 ** 2 + se1 ** 2)
        if (cell["n"] < 2).any():
            verdict = "is undecided (a cell with one seed has no standard error)"
        else:
            verdict = "shrinks" if change < -2 * se else "grows" if change > 2 * se else "stays within two SE"
        peaks = [_peak(model, rows.set_index("size"), sizes[-1])
                 for model, rows in cell.groupby("model", sort=False)]
        peaks = [p for p in peaks if p]
        parts.append(f"{ds}, d = {dim} ({', '.join(sorted(both))}): the spread between families goes from {s0:.2f} ± {se0:.2f} nats "
                     f"(decoder {sizes[0]}) to {s1:.2f} ± {se1:.2f} (decoder {sizes[-1]}, best {best1}, "
                     f"worst {worst1}): it {verdict}"
                     + (f"; more capacity stops helping: {', '.join(peaks)}" if peaks else "") + ".")
    if not parts:
        return ""
    return "Does a larger decoder make the prior irrelevant? " + " ".join(parts)


def _se(a, b, col) -> float:
    return math.sqrt(sum(r[f"{col}_sd"] ** 2 / r["n"] if r["n"] > 1 else 0.0 for r in (a, b)))


def _peak(model, rows, largest) -> str:
    """Why a family's test LL is best below the largest decoder: a decline beyond two SE is read
    off the runs at the largest size: most stopped at the epoch limit (not converged within the
    budget), or their train − validation ELBO gap grew beyond two SE (overfitting), or neither."""
    top = rows["loglik"].idxmax()
    if top == largest or largest not in rows.index:
        return ""
    p, last = rows.loc[top], rows.loc[largest]
    drop = p["loglik"] - last["loglik"]
    if drop <= 2 * _se(p, last, "loglik"):
        return f"{model} levels off from {top} ({largest} within two SE)"
    grew = last["overfit"] - p["overfit"]
    if 2 * last["at_epoch_limit"] > last["n"]:
        why = (f"not converged within the budget: {last['at_epoch_limit']} of {last['n']} runs at {largest} "
               "stopped at the epoch limit")
    elif grew > 2 * _se(p, last, "overfit"):
        why = (f"overfitting: the train − validation ELBO gap grows from {p['overfit']:.2f} "
               f"to {last['overfit']:.2f} nats")
    else:
        why = (f"neither the epoch limit nor overfitting: train − validation ELBO gap {p['overfit']:.2f} "
               f"and {last['overfit']:.2f} nats")
    return f"{model} peaks at {top}, {drop:.2f} nats above {largest} ({why})"


def plot(frame, out) -> None:
    """Test LL against decoder parameters, one line per family, a panel per (dataset, d); below
    each, the gap of each family to the best one."""
    from .figures import style

    cells = list(frame.groupby(["dataset", "latent_dim"], sort=False).groups)
    fig, axes = style.figure(2, len(cells), panel=(3.4, 2.6), sharex="col")
    for j, (ds, dim) in enumerate(cells):
        cell = frame[(frame.dataset == ds) & (frame.latent_dim == dim)]
        for model in style.ordered_models(cell["model"]):
            rows = cell[cell.model == model].sort_values("decoder_parameters")
            kw = style.model_style(model)
            axes[0][j].errorbar(rows.decoder_parameters, rows.loglik, yerr=rows.loglik_sd.fillna(0),
                                capsize=2, lw=1.2, ms=4, **kw)
            axes[1][j].plot(rows.decoder_parameters, rows.gap_to_best, lw=1.2, ms=4, **kw)
        axes[0][j].set_title(f"{style.dataset_label(ds)}, d = {dim}")
        axes[0][j].set_ylabel("test log-likelihood (nats)")
        axes[1][j].set_ylabel("gap to the best family (nats)")
        axes[1][j].set_xlabel("decoder parameters")
        for ax in (axes[0][j], axes[1][j]):
            ax.set_xscale("log")
    style.legend_below(fig, axes)
    style.save(fig, out)
