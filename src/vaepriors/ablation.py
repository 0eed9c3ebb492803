"""One-factor-at-a-time ablations: named variants of the configuration, each trained on the grid
beside the baseline (the configuration itself), and the table of what each one moves.

params.yaml's optional ``ablation.variants`` maps a name to a partial configuration that is merged
over the whole one, e.g. ``{glorot: {model: {init: glorot}}, split55k: {data: {n_validation:
5000}}}``. A variant runs a family only where it changes a value that family's runs use (the
data section, or its vaepriors.config.run_values): a vMF setting does not retrain the N-VAE.
File names live here so the rules (workflow/rules/ablation.smk) only wire them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from .config import ConfigError, deep_merge, load_schema, run_values, validate

ROOT = "results/ablation"
BASELINE = "baseline"
# Snakemake patterns of a variant run's folder and metrics file (workflow/rules/ablation.smk)
RUN_DIR = ROOT + "/{variant}/models/{dataset}/{model}/d{dim}/s{seed}"
METRICS = ROOT + "/{variant}/metrics/{dataset}/{model}/d{dim}/s{seed}.json"


def variants(config: Mapping) -> dict[str, dict]:
    return dict(config.get("ablation", {}).get("variants", {}))


def variant_config(config: Mapping, name: str) -> dict:
    """The whole configuration of variant ``name``, validated."""
    try:
        overrides = variants(config)[name]
    except KeyError:
        raise ConfigError(f"ablation.variants: no variant {name!r}") from None
    merged = deep_merge(dict(config), overrides)
    merged.pop("ablation", None)
    validate(merged, load_schema(), where=f"ablation.variants.{name} merged over the configuration")
    return merged


def check(config: Mapping) -> None:
    """Every variant merges into a valid configuration and changes something; names are paths."""
    for name in variants(config):
        if name == BASELINE or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"ablation.variants: {name!r} is not a usable variant name "
                              f"(letters, digits, - and _; not {BASELINE!r})")
        if not any(changes_data(config, name) or applies(config, name, m) for m in config["models"]):
            raise ConfigError(f"ablation.variants.{name} changes no value any configured family uses")


def changes_data(config: Mapping, name: str) -> bool:
    return variant_config(config, name)["data"] != config["data"]


def applies(config: Mapping, name: str, model: str) -> bool:
    """Whether variant ``name`` changes what a run of ``model`` trains on or with."""
    if changes_data(config, name):
        return True
    return run_values(variant_config(config, name), "train", model) != run_values(config, "train", model)


def runs(config: Mapping) -> list[tuple[str, str, str, int, int]]:
    """(variant, dataset, model, dim, seed) of every variant run."""
    from .figures.targets import grid

    # once per (variant, family): each call merges and validates the variant's configuration
    runs_of = {(v, m): applies(config, v, m) for v in variants(config) for m in config["models"]}
    return [(v, ds, m, d, s) for v in variants(config) for ds, m, d, s in grid(config)
            if runs_of[v, m]]


def run_dir(variant: str, dataset: str, model: str, dim, seed) -> str:
    return RUN_DIR.format(variant=variant, dataset=dataset, model=model, dim=dim, seed=seed)


def metrics_path(variant: str, dataset: str, model: str, dim, seed) -> str:
    return METRICS.format(variant=variant, dataset=dataset, model=model, dim=dim, seed=seed)


def data_path(config: Mapping, variant: str, dataset: str) -> str:
    """The prepared data of a variant: its own file where it changes the data section."""
    processed = config["data"]["processed_dir"]
    if changes_data(config, variant):
        return f"{processed}/ablation/{variant}/{dataset}.npz"
    return f"{processed}/{dataset}.npz"


# --- the table -----------------------------------------------------------------------------------

def _stats(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return mean, sd, n


def table(rows: list[dict]):
    """rows: one per evaluated run, {variant, dataset, model, latent_dim, seed, loglik, elbo, rec,
    kl, best_epoch, epochs}. Returns a DataFrame, one row per (dataset, model, d, variant): means,
    sds, n, and the change of the log-likelihood against the baseline with its standard error
    (Welch) and, over the seeds both have, the paired mean difference."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    out = []
    keys = ["dataset", "model", "latent_dim"]
    for (ds, model, dim), cell in frame.groupby(keys, sort=False):
        base = cell[cell.variant == BASELINE]
        for variant, group in cell.groupby("variant", sort=False):
            row = {"dataset": ds, "model": model, "latent_dim": int(dim), "variant": variant}
            for metric in ("loglik", "elbo", "rec", "kl", "best_epoch", "epochs"):
                mean, sd, n = _stats(group[metric].tolist())
                row[metric], row[f"{metric}_sd"] = mean, sd
            row["n"] = len(group)
            if variant != BASELINE and len(base):
                m0, s0, n0 = _stats(base["loglik"].tolist())
                m1, s1, n1 = _stats(group["loglik"].tolist())
                row["delta_loglik"] = m1 - m0
                row["delta_se"] = math.sqrt((s0 ** 2 / n0 if n0 > 1 else 0) + (s1 ** 2 / n1 if n1 > 1 else 0))
                paired = group.merge(base, on="seed", suffixes=("", "_base"))
                row["paired_n"] = len(paired)
                row["paired_delta"] = float((paired.loglik - paired.loglik_base).mean()) if len(paired) else float("nan")
            out.append(row)
    result = pd.DataFrame(out)
    order = [BASELINE, *[v for v in result["variant"].unique() if v != BASELINE]]
    result["variant"] = pd.Categorical(result["variant"], order)
    return result.sort_values(keys + ["variant"]).reset_index(drop=True)


def markdown(frame, descriptions: Mapping[str, str]) -> str:
    def pm(mean, sd, digits=2):
        return f"{mean:.{digits}f}" if math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"

    lines = ["| dataset | model | d | variant | what changes | n | test LL | Δ LL vs baseline (SE) | ELBO | rec | KL | best epoch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in frame.itertuples():
        delta = ""
        if r.variant != BASELINE and not math.isnan(getattr(r, "delta_loglik", float("nan"))):
            delta = f"{r.delta_loglik:+.2f} ({r.delta_se:.2f})"
        lines.append(
            f"| {r.dataset} | {r.model} | {r.latent_dim} | {r.variant} | {descriptions.get(r.variant, '')} "
            f"| {r.n} | {pm(r.loglik, r.loglik_sd)} | {delta} | {pm(r.elbo, r.elbo_sd)} "
            f"| {pm(r.rec, r.rec_sd)} | {pm(r.kl, r.kl_sd)} | {pm(r.best_epoch, r.best_epoch_sd, 0)} |")
    return "\n".join(lines) + "\n"


def describe(config: Mapping) -> dict[str, str]:
    """{variant: "model.init = glorot; ..."}: the values each variant sets (baseline: none)."""
    def flat(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, Mapping):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key} = {value}"

    out = {BASELINE: "the configuration"}
    out.update({name: "; ".join(flat(overrides)) for name, overrides in variants(config).items()})
    return out


def paragraph(frame) -> str:
    """The summary's answer from the ablation table: per model and d, what each variant moved
    the test log-likelihood by (± SE), and which moves exceed two standard errors."""
    if frame.empty:
        return ""
    parts, clear = [], []
    for (ds, model, dim), cell in frame.groupby(["dataset", "model", "latent_dim"], sort=False):
        base = cell[cell["variant"] == BASELINE]
        others = cell[cell["variant"] != BASELINE]
        if base.empty or others.empty:
            continue
        moves = ", ".join(f"{r.variant} {r.delta_loglik:+.2f} ± {r.delta_se:.2f}" for r in others.itertuples())
        parts.append(f"{model} at d = {dim} ({ds}; baseline {base['loglik'].iloc[0]:.2f}, "
                     f"n = {int(base['n'].iloc[0])}): {moves}")
        clear += [f"{r.variant} ({model}, d = {dim}, {r.delta_loglik:+.2f})" for r in others.itertuples()
                  if r.delta_se > 0 and abs(r.delta_loglik) > 2 * r.delta_se]
    if not parts:
        return ""
    verdict = ("Beyond two standard errors: " + "; ".join(clear) + "."
               if clear else "No variant moves the test log-likelihood by more than two standard errors.")
    return ("Each variant changes one setting of the baseline; change of the test log-likelihood "
            "against the baseline, nats, ± its standard error over seeds: " + "; ".join(parts)
            + ". " + verdict)


def read_run(metrics_file: str | Path, history_file: str | Path, variant: str) -> dict:
    """One table row from a run's metrics.json and history.csv."""
    import csv

    from .evaluation.tables import read_metrics

    m = read_metrics(metrics_file, required=("dataset", "model", "latent_dim", "seed", "loglik", "elbo"))
    with open(history_file) as fh:
        history = list(csv.DictReader(fh))
    best = max(history, key=lambda r: float(r["val_elbo"]))
    return {"variant": variant, "dataset": m["dataset"], "model": m["model"],
            "latent_dim": int(m["latent_dim"]), "seed": int(m["seed"]), "loglik": m["loglik"]["mean"],
            "elbo": m["elbo"]["elbo"], "rec": m["elbo"]["rec"], "kl": m["elbo"]["kl"],
            "best_epoch": int(best["epoch"]), "epochs": int(history[-1]["epoch"])}


def plot_curves(histories, out: str | Path) -> None:
    """Validation ELBO by epoch, mean over seeds, one line per variant; a panel per (model, d).
    ``histories``: a DataFrame of history.csv rows with variant, model, latent_dim, seed columns."""
    import numpy as np

    from .figures import style

    style.apply()
    cells = list(histories.groupby(["model", "latent_dim"], sort=True).groups)
    fig, axes = style.figure(1, len(cells), panel=(3.6, 2.8))
    colors = ["#000000", "#BB5566", "#004488", "#DDAA33", "#228833", "#AA3377"]
    order = [BASELINE, *sorted(set(histories["variant"]) - {BASELINE})]
    for ax, (model, dim) in zip(axes[0], cells):
        cell = histories[(histories.model == model) & (histories.latent_dim == dim)]
        lows = []
        for i, variant in enumerate(order):
            runs_ = cell[cell.variant == variant]
            if runs_.empty:
                continue
            curve = runs_.groupby("epoch")["val_elbo"].mean()
            ax.plot(curve.index, curve.values, color=colors[i % len(colors)], lw=1.2, label=variant)
            lows.append(np.nanpercentile(curve.values, 10))
        ax.set_title(f"{style.model_label(model)}, d = {dim}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation ELBO (nats)")
        if lows:
            top = cell["val_elbo"].max()
            ax.set_ylim(min(lows), top + 0.05 * (top - min(lows)) + 0.5)
    legend = {}  # every variant once, from whichever panel has it
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    style.save(fig, out)
