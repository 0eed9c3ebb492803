"""The circle toy study (data/circle.py): does a family find the circle?

Per run: the test log-likelihood (from the run's metrics) beside the true log-density of the same
points (an exact number to the quadrature's accuracy, so their difference is the model's
shortfall; in expectation it is >= 0 by Gibbs' inequality), and how well the code's angle
recovers the true angle: the circular rank correlation (Fisher & Lee 1982) of the angle of the
posterior mean (about the centre of a circle fitted to the codes) with the true angle. It is 1
when one angle is a monotone function of the other around the circle, whatever the warping,
rotation or orientation (a mirrored circle is as good as the original), and near 0 without
relation; Jammalamadaka & SenGupta's correlation of sines (circular_correlation) is not invariant
to the warping a decoder may put on the angle, so it is kept for reference only.
"""

from __future__ import annotations

import math

import numpy as np


def circular_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """r = sum sin(a - abar) sin(b - bbar) / sqrt(sum sin^2(a - abar) sum sin^2(b - bbar)),
    abar and bbar the circular means: 1 for b = a + c, -1 for b = -a + c."""
    def centred(t):
        return np.sin(t - np.arctan2(np.sin(t).mean(), np.cos(t).mean()))

    sa, sb = centred(np.asarray(a, dtype=np.float64)), centred(np.asarray(b, dtype=np.float64))
    return float((sa * sb).sum() / math.sqrt((sa**2).sum() * (sb**2).sum()))


def circular_rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """max over orientations of |mean exp(i (u - v))|^2 with u, v the uniform scores 2 pi rank / n
    of a and b (Fisher & Lee 1982): 1 for a monotone circular relation, about 1/n for none."""
    def scores(t):
        return 2 * math.pi * np.argsort(np.argsort(np.mod(t, 2 * math.pi))) / len(t)

    u, v = scores(np.asarray(a, dtype=np.float64)), scores(np.asarray(b, dtype=np.float64))
    return float(max(abs(np.exp(1j * (u - v)).mean()) ** 2, abs(np.exp(1j * (u + v)).mean()) ** 2))


def code_angles(codes: np.ndarray) -> np.ndarray:
    """The angle of each code's first two coordinates about the centre of the circle fitted to
    them by least squares (Kasa's fit: x^2 + y^2 = a x + b y + c, centre (a/2, b/2)); not about
    their mean, which uneven angles pull away from the centre."""
    z = np.asarray(codes, dtype=np.float64)[:, :2]
    design = np.column_stack([z, np.ones(len(z))])
    (a, b, _), *_ = np.linalg.lstsq(design, (z**2).sum(1), rcond=None)
    centred = z - np.array([a, b]) / 2
    return np.arctan2(centred[:, 1], centred[:, 0])


def run_row(model, arrays: dict, metrics: dict) -> dict:
    """One table row of a trained run: its family, d, seed and the numbers above."""
    import torch

    codes = model.embed_all(torch.from_numpy(np.asarray(arrays["x_test"])).float())
    true = float(np.mean(arrays["log_density_test"]))
    return {"model": metrics["model"], "latent_dim": int(metrics["latent_dim"]), "seed": int(metrics["seed"]),
            "loglik": metrics["loglik"]["mean"], "elbo": metrics["elbo"]["elbo"], "true_loglik": true,
            "gap": true - metrics["loglik"]["mean"],
            "angle_correlation": circular_rank_correlation(code_angles(codes), arrays["angle_test"]),
            "clustering_acc": metrics.get("clustering", {}).get("acc", float("nan"))}


COLUMNS = ("loglik", "elbo", "gap", "angle_correlation", "clustering_acc")


def table(rows: list[dict]):
    """Mean, sd and n over seeds per (model, latent_dim), in the rows' order of families."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    out = []
    for (model, dim), group in frame.groupby(["model", "latent_dim"], sort=False):
        row = {"model": model, "latent_dim": int(dim), "n": len(group),
               "true_loglik": float(group["true_loglik"].iloc[0])}
        for col in COLUMNS:
            row[col] = float(group[col].mean())
            row[f"{col}_sd"] = float(group[col].std(ddof=1)) if len(group) > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def markdown(frame) -> str:
    def pm(r, col, digits=2):
        sd = r[f"{col}_sd"]
        return f"{r[col]:.{digits}f}" if math.isnan(sd) else f"{r[col]:.{digits}f} ± {sd:.{digits}f}"

    true = frame["true_loglik"].iloc[0] if len(frame) else float("nan")
    lines = [f"True test log-density (quadrature over the angle): {true:.2f} nats.", "",
             "| family | d | n | test LL | gap to the true density | ELBO | angle rank correlation | cluster acc |",
             "|---|---|---|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        lines.append(f"| {r['model']} | {r['latent_dim']} | {r['n']} | {pm(r, 'loglik')} | {pm(r, 'gap')} "
                     f"| {pm(r, 'elbo')} | {pm(r, 'angle_correlation', 4)} | {pm(r, 'clustering_acc', 3)} |")
    answer = paragraph(frame)
    return "\n".join(lines) + "\n" + ("\n" + answer + "\n" if answer else "")


def paragraph(frame) -> str:
    """The families ranked by test log-likelihood (their shortfall from the true density) and by
    how well their code's angle follows the true one."""
    if len(frame) < 2:
        return ""
    by_ll = frame.sort_values("loglik", ascending=False)
    by_angle = frame.sort_values("angle_correlation", ascending=False)
    ll = ", ".join(f"{r.model} {r.gap:.2f}" for r in by_ll.itertuples())
    angle = ", ".join(f"{r.model} {r.angle_correlation:.4f}" for r in by_angle.itertuples())
    return (f"Shortfall from the true log-density (nats, best first): {ll}. Circular rank correlation "
            f"of the code's angle with the true angle (best first): {angle}. Means over seeds; the "
            "table gives the sd and n.")
