"""results/summary.md: the evaluation tables, the figures, and one generated paragraph per study.

Every number in a paragraph is read from the result files at generation time; nothing here is a
typed-in result. Conventions: mean ± sd over seeds (sample sd); "SE" of a difference of two means is
sqrt(sd_a^2/n_a + sd_b^2/n_b).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from .. import families
from ..io import write_text
from . import style
from .results import REFERENCE_MODELS, table_models
from .weights import FAMILY_LABELS


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pm(mean: float, sd: float, digits: int = 2) -> str:
    return _f(mean, digits) if sd is None or math.isnan(sd) else f"{_f(mean, digits)} ± {_f(sd, digits)}"


def _sg(x: float, digits: int = 4) -> str:
    """Signed, without a negative zero."""
    x = round(float(x), digits)
    return f"{x + 0.0:+.{digits}f}"


def _se(sd_a, n_a, sd_b, n_b) -> float:
    terms = [(s**2 / n) for s, n in ((sd_a, n_a), (sd_b, n_b)) if n and not math.isnan(s)]
    return math.sqrt(sum(terms)) if len(terms) == 2 else float("nan")


def _L(model: str) -> str:
    return style.model_label(model)


def _D(dataset: str) -> str:
    return style.dataset_label(dataset)


# --- markdown tables of the studies -------------------------------------------------------------

def sample_quality_markdown(table: pd.DataFrame, classifiers: dict) -> str:
    lines = []
    for dataset, block in table.groupby("dataset", sort=False):
        info = classifiers.get(dataset, {})
        models = style.ordered_models(block["model"].unique())
        lines += [f"## {dataset}: Fréchet distance of prior samples to test images "
                  f"(classifier features; lower is better)", "",
                  f"Feature classifier: MLP {info.get('hidden', '?')}, test accuracy "
                  f"{_f(info.get('test_accuracy', float('nan')), 4)}; {int(block['n_samples'].iloc[0])} "
                  f"generated images per run; real-image floor {_f(block['fd_floor'].mean(), 3)}.", "",
                  "| d | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
        for dim, rows in block.groupby("latent_dim"):
            cells = []
            for m in models:
                v = rows[rows["model"] == m]["fd"]
                cells.append(_pm(v.mean(), v.std(), 3) if len(v) else "")
            lines.append(f"| {dim} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def density_markdown(table: pd.DataFrame) -> str:
    lines = []
    for dataset, block in table.groupby("dataset", sort=False):
        has_fd = "fd" in block and block["fd"].notna().any()
        lines += [f"## {dataset}: AE ex-post density, held-out (test) log p(z) per latent dimension "
                  f"(nats){' / Fréchet distance of decoded samples' if has_fd else ''}", "",
                  "| d | n | GMM | GMM K | KDE | KDE bandwidth |", "|---|---|---|---|---|---|"]
        for (dim, n), rows in block.groupby(["latent_dim", "n"]):
            cells = []
            for est in ("gmm", "kde"):
                r = rows[rows["estimator"] == est]
                text = _pm(r["test_logdens_per_dim"].mean(), r["test_logdens_per_dim"].std(), 3)
                if has_fd:
                    text += f" / {_pm(r['fd'].mean(), r['fd'].std(), 3)}"
                cells.append(text)
            k = rows[rows["estimator"] == "gmm"]["components"]
            bw = rows[rows["estimator"] == "kde"]["bandwidth"]
            tag = " (all)" if n == rows["n_train"].max() else ""
            lines.append(f"| {dim} | {n}{tag} | {cells[0]} | {', '.join(str(int(v)) for v in sorted(set(k)))} "
                         f"| {cells[1]} | {_f(bw.mean(), 3)} |")
        lines.append("")
    return "\n".join(lines)


# --- paragraphs ----------------------------------------------------------------------------------

def loglik_paragraph(wide: pd.DataFrame) -> str:
    wide = wide[wide["metric"] == "loglik"]
    models = [m for m in table_models(wide) if m not in REFERENCE_MODELS]
    out = []
    # Families that ask for it are compared with the baseline family (S-VAE minus N-VAE).
    baseline = next((m for m in models if families.get(m).baseline), None)
    compared = [m for m in models if baseline and families.get(m).compare_to_baseline]
    for dataset, block in wide.groupby("dataset", sort=False):
        parts = []
        ahead = {m: ([], []) for m in compared}
        for _, row in block.sort_values("latent_dim").iterrows():
            ranked = sorted((m for m in models if not math.isnan(row[f"{m}_mean"])),
                            key=lambda m: -row[f"{m}_mean"])
            if not ranked:
                continue
            best = ranked[0]
            text = (f"at d = {row['latent_dim']} the best is {_L(best)} with "
                    f"{_pm(row[f'{best}_mean'], row[f'{best}_sd'])} nats (n = {row[f'{best}_n']})")
            if len(ranked) > 1:
                second = ranked[1]
                gap = row[f"{best}_mean"] - row[f"{second}_mean"]
                se = _se(row[f"{best}_sd"], row[f"{best}_n"], row[f"{second}_sd"], row[f"{second}_n"])
                text += (f", {_f(gap)} nats above {_L(second)} ({_pm(row[f'{second}_mean'], row[f'{second}_sd'])}"
                         f"{'' if math.isnan(se) else f'; SE of the gap {_f(se)}'})")
            parts.append(text)
            for m in compared:
                if m in ranked and baseline in ranked:
                    diff = row[f"{m}_mean"] - row[f"{baseline}_mean"]
                    ahead[m][0 if diff > 0 else 1].append(f"{row['latent_dim']} ({diff:+.2f})")
        sent = f"**{_D(dataset)}**: " + "; ".join(parts) + "."
        for m, (wins, loses) in ahead.items():
            if wins or loses:
                sent += (f" {_L(m)} minus {_L(baseline)} (nats): "
                         + (f"ahead at d = {', '.join(wins)}" if wins else "never ahead")
                         + (f"; behind at d = {', '.join(loses)}" if loses else "; never behind")
                         + ".")
        out.append(sent)
    notes = [families.get(m).loglik_note for m in style.ordered_models(models) if families.get(m).loglik_note]
    return "\n\n".join(out) + "".join("\n\n" + note for note in notes)


def clustering_paragraph(wide: pd.DataFrame) -> str:
    out = []
    acc = wide[wide["metric"] == "cluster_acc"]
    models = [m for m in table_models(acc) if m not in REFERENCE_MODELS]
    refs = [m for m in REFERENCE_MODELS if m in table_models(acc)]
    for dataset, block in acc.groupby("dataset", sort=False):
        cells = [(row[f"{m}_mean"], row[f"{m}_sd"], m, row["latent_dim"])
                 for _, row in block.iterrows() for m in models if not math.isnan(row[f"{m}_mean"])]
        if not cells:
            continue
        mean, sd, m, d = max(cells)
        text = (f"**{_D(dataset)}**: the highest test clustering accuracy (Hungarian, K = classes) is "
                f"{_L(m)} at d = {d}: {_pm(mean, sd, 3)}")
        ref_vals = {r: float(block[f"{r}_mean"].dropna().mean()) for r in refs if block[f"{r}_mean"].notna().any()}
        if ref_vals:
            text += "; the no-VAE references reach " + ", ".join(
                f"{REFERENCE_MODELS[r]} {_f(v, 3)}" for r, v in ref_vals.items())
            floor = max(ref_vals.values())
            above = sorted({f"{_L(mm)} (d = {dd})" for mean_, _, mm, dd in cells if mean_ > floor})
            text += (f". Configurations above the best reference on average: {', '.join(above)}"
                     if above else ". No model beats the best reference on average")
        per_model = []
        for mm in models:
            vals = [(c[0], c[3]) for c in cells if c[2] == mm]
            if vals:
                best_v, best_d = max(vals)
                per_model.append(f"{_L(mm)} {_f(best_v, 3)} (d = {best_d})")
        text += ". Best accuracy per model: " + ", ".join(per_model) + "."
        out.append(text)
    return "\n\n".join(out)


def knn_paragraph(wide: pd.DataFrame) -> str:
    out = []
    models = [m for m in table_models(wide) if m not in REFERENCE_MODELS]
    for (dataset, metric), block in wide.groupby(["dataset", "metric"], sort=False):
        cells = [(row[f"{m}_mean"], row[f"{m}_sd"], m, row["latent_dim"])
                 for _, row in block.iterrows() for m in models if not math.isnan(row[f"{m}_mean"])]
        if cells:
            mean, sd, m, d = max(cells)
            out.append(f"{_D(dataset)}, {str(metric).replace('knn_', '')} labels: best {_L(m)} at d = {d}, "
                       f"{_pm(mean, sd, 3)}")
    return ("k-NN test accuracy on posterior means (k chosen on validation): " + "; ".join(out) + ".") if out else ""


def sample_quality_paragraph(table: pd.DataFrame, classifiers: dict) -> str:
    out = []
    for dataset, block in table.groupby("dataset", sort=False):
        info = classifiers.get(dataset, {})
        agg = block.groupby(["latent_dim", "model"])["fd"].agg(["mean", "std"]).reset_index()
        parts = []
        for dim, rows in agg.groupby("latent_dim"):
            rows = rows.sort_values("mean")
            b = rows.iloc[0]
            parts.append(f"d = {dim}: {_L(b['model'])} {_pm(b['mean'], b['std'], 3)}"
                         + (f" (next {_L(rows.iloc[1]['model'])} {_pm(rows.iloc[1]['mean'], rows.iloc[1]['std'], 3)})"
                            if len(rows) > 1 else ""))
        out.append(f"**{_D(dataset)}** (feature classifier test accuracy "
                   f"{_f(info.get('test_accuracy', float('nan')), 4)}; real-image floor "
                   f"{_f(block['fd_floor'].mean(), 3)}): lowest Fréchet distance of prior samples "
                   + "; ".join(parts) + ".")
    return "\n\n".join(out)


def density_paragraph(table: pd.DataFrame) -> str:
    out = []
    for dataset, block in table.groupby("dataset", sort=False):
        agg = (block.groupby(["latent_dim", "estimator", "n"])
               .agg(ld=("test_logdens_per_dim", "mean"), sd=("test_logdens_per_dim", "std"),
                    fd=("fd", "mean") if "fd" in block else ("n", "size"))
               .reset_index())
        n_min, n_all = int(block["n"].min()), int(block["n"].max())
        parts, drops = [], {}
        for dim, rows in agg.groupby("latent_dim"):
            r = rows.set_index(["estimator", "n"])
            try:
                g_all, g_min = r.loc[("gmm", n_all)], r.loc[("gmm", n_min)]
                k_all, k_min = r.loc[("kde", n_all)], r.loc[("kde", n_min)]
            except KeyError:
                continue
            drops[dim] = (g_all["ld"] - g_min["ld"], k_all["ld"] - k_min["ld"])
            text = (f"d = {dim}: GMM {_pm(g_all['ld'], g_all['sd'], 3)} with all {n_all} codes vs "
                    f"{_pm(g_min['ld'], g_min['sd'], 3)} with {n_min}; KDE {_pm(k_all['ld'], k_all['sd'], 3)} vs "
                    f"{_pm(k_min['ld'], k_min['sd'], 3)} (KDE − GMM at all codes {k_all['ld'] - g_all['ld']:+.3f})")
            if "fd" in block and block["fd"].notna().any():
                text += (f"; FD of decoded samples GMM {_f(g_min['fd'], 3)} → {_f(g_all['fd'], 3)}, "
                         f"KDE {_f(k_min['fd'], 3)} → {_f(k_all['fd'], 3)}")
            parts.append(text)
        text = (f"**{_D(dataset)}**, held-out log-density per latent dimension (nats): "
                + "; ".join(parts) + ".")
        if len(drops) >= 2:
            dims = sorted(drops)
            lo, hi = drops[dims[0]], drops[dims[-1]]
            text += (f" Going from {n_min} to all {n_all} codes gains the GMM {_sg(lo[0], 3)} nats/dim at "
                     f"d = {dims[0]} and {_sg(hi[0], 3)} at d = {dims[-1]}; the KDE {_sg(lo[1], 3)} and "
                     f"{_sg(hi[1], 3)}.")
            for name, a, b in (("GMM", lo[0], hi[0]), ("KDE", lo[1], hi[1])):
                verdict = ("grows" if b > a else "does not grow")
                text += (f" For the {name} the cost of using only {n_min} codes {verdict} with the latent "
                         f"dimension ({_sg(a, 3)} → {_sg(b, 3)} nats/dim from d = {dims[0]} to {dims[-1]}).")
        out.append(text)
    return "\n\n".join(out)


def weights_paragraph(table: pd.DataFrame) -> str:
    out = []
    table = sort_models(table.copy())
    table["best_by_loglik"] = table["best_by_loglik"].astype(str).str.lower().isin(["true", "1"])
    for (dataset, model), block in table.groupby(["dataset", "model"], sort=False):
        parts = []
        for state in ("init", "trained"):
            s = block[block["state"] == state]
            if s.empty:
                continue
            n_layers = s["layer"].nunique()
            best = s[s["best_by_loglik"]]["family"].value_counts()
            piv = s.pivot_table(index="layer", columns="family", values="heldout_loglik", sort=False)
            heavy = piv[[c for c in ("laplace", "t") if c in piv]].max(axis=1) - piv["norm"]
            counts = ", ".join(f"{FAMILY_LABELS[f]} {int(best.get(f, 0))}" for f in ("norm", "laplace", "t"))
            parts.append(f"{'at initialisation' if state == 'init' else 'after training'} the best "
                         f"held-out fit is {counts} (of {n_layers} layers), and the better heavy-tailed "
                         f"fit gains {_sg(heavy.mean())} nats per weight over the Normal on average "
                         f"(range {_sg(heavy.min())} to {_sg(heavy.max())})")
        dim, seed = int(block["latent_dim"].iloc[0]), int(block["seed"].iloc[0])
        out.append(f"{_D(dataset)}, {_L(model)} (d = {dim}, seed {seed}): " + "; ".join(parts) + ".")
    verdict = []
    for state, name in (("init", "initial"), ("trained", "trained")):
        s = table[(table["state"] == state) & table["best_by_loglik"]]
        if not s.empty:
            heavier = int(s["family"].isin(["laplace", "t"]).sum())
            verdict.append(f"{heavier} of {len(s)} {name} layers")
    if verdict:
        out.append("Over all models, a heavier-tailed family (Laplace or Student-t) beats the Normal on "
                   "held-out weights (paired gain above 2 standard errors) in " + " and in ".join(verdict)
                   + ". Initial weights are uniform on ±1/sqrt(fan_in) (PyTorch's default), so the "
                   "initial rows are the baseline that training moves away from.")
    return "\n\n".join(out)


# --- document ------------------------------------------------------------------------------------

SECTIONS = [
    ("replication", "Replication", [], ["paper_comparison"]),
    ("loglik", "1. Test log-likelihood", ["loglik"], ["loglik"]),
    ("clustering", "2. Clustering", ["clustering"], ["clustering"]),
    ("knn", "3. k-NN classification on latent means", [], ["knn"]),
    ("latent", "4. Latent maps at d = 2", ["latent_maps"], []),
    ("images", "5. Prior samples and test reconstructions", ["samples", "reconstructions"], []),
    ("curves", "6. Training curves", ["training_curves"], []),
    ("quality", "7. Sample quality (Fréchet distance in classifier features)", ["sample_quality"], ["sample_quality"]),
    ("density", "8. AE ex-post density estimation", ["ae_density"], ["ae_density"]),
    ("weights", "9. Weight distributions", ["weights_trained", "weights_init", "weights_gain"], ["weights"]),
    ("spherical", "10. Spherical posteriors: stability and speed", ["spherical_stability"],
     ["spherical_stability"]),
    ("ablation", "11. Ablation: one setting at a time", ["ablation_curves"], ["ablation"]),
    ("convergence", "12. How far K is from converged", [], ["loglik_convergence"]),
    ("semisup", "13. Semi-supervised classification: M2 and M1+M2", ["semi_supervised"],
     ["semi_supervised"]),
    # the tables end with their answer in words (evaluation/circle.py, decoder_sweep.py)
    ("capacity", "14. Does a powerful decoder make the prior irrelevant?", ["circle_latents", "decoder_sweep"],
     ["circle", "decoder_sweep"]),
]


FIGURE_NOTES = {
    "loglik": "test log-likelihood against d, mean ± sd over seeds",
    "clustering": "clustering accuracy, NMI and ARI against d, with the no-VAE reference rows",
    "latent_maps": "test codes at d = 2 coloured by class (S-VAE: Hammer equal-area map of S²)",
    "samples": "Bernoulli means decoded from z ~ p(z), first seed",
    "reconstructions": "test images and their reconstructions, first seed",
    "training_curves": "validation ELBO, reconstruction and KL by epoch, mean ± sd over seeds",
    "sample_quality": "Fréchet distance of prior samples (classifier features) against d",
    "ae_density": "AE ex-post GMM and KDE: held-out code log-density and sample FD against n",
    "weights_trained": "trained weight histograms with Normal, Laplace and Student-t fits",
    "weights_init": "initial weight histograms with the same fits",
    "weights_gain": "held-out log-likelihood gain of Laplace / Student-t over Normal per layer",
    "spherical_stability": "vMF and Power Spherical training steps: time against m, non-finite rows over (m, κ)",
    "ablation_curves": "validation ELBO by epoch per ablation variant, mean over seeds",
    "semi_supervised": "test accuracy against labelled examples per M1/M2 combination, published points overlaid",
    "circle_latents": "test codes of the circle toy per family, coloured by the true angle",
    "decoder_sweep": "test log-likelihood against decoder parameters per family, encoder fixed",
}


def sort_models(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the canonical model order (then as they were)."""
    if "model" not in frame or frame.empty:
        return frame
    rank = {m: i for i, m in enumerate(style.MODELS)}
    key = frame["model"].map(lambda m: rank.get(m, len(rank)))
    return frame.assign(_rank=key).sort_values("_rank", kind="stable").drop(columns="_rank")


def _demote(md: str) -> str:
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", md, flags=re.MULTILINE)


def build_summary(out: str | Path, *, figures: list, tables_md: list, paragraphs: dict,
                  header: str = "") -> str:
    out = Path(out)
    lines = ["# vaepriors: results summary", "",
             "Generated by `scripts/figures/summary.py` from the files under `results/`; every number "
             "below is read from them. Cells are mean ± sd over seeds.", ""]
    if header:
        lines += [header, ""]
    for key, title, fig_stems, table_stems in SECTIONS:
        section = []
        if paragraphs.get(key):
            section += [paragraphs[key], ""]
        for stem in fig_stems:
            for p in sorted(Path(f) for f in figures if Path(f).suffix == ".png" and Path(f).stem == stem):
                rel = os.path.relpath(p, out.parent)
                where = _D(p.parent.name) if p.parent.name != "figures" else "all datasets"
                pdf = os.path.relpath(p.with_suffix(".pdf"), out.parent)
                section += [f"![{stem} ({where})]({rel})", "",
                            f"*{FIGURE_NOTES.get(stem, stem.replace('_', ' '))}; {where}* ([PDF]({pdf}))", ""]
        for stem in table_stems:
            for p in sorted(Path(t) for t in tables_md if Path(t).stem == stem or Path(t).stem.startswith(stem + "_")):
                section += [f"Table `{os.path.relpath(p, out.parent)}`:", "",
                            _demote(p.read_text(encoding="utf-8").strip()), ""]
        # A section this run has nothing for is left out (e.g. latent maps when no d = 2 run is here).
        if section:
            lines += [f"## {title}", ""] + section
    text = "\n".join(lines).rstrip() + "\n"
    write_text(out, text)
    return text
