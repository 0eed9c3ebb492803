"""One look for every figure: Agg backend, a palette that survives grayscale printing, and a
distinct marker and line style per model so that no curve is identified by colour alone.

Each family's name, colour, marker and line style live on its class (vaepriors.families);
MODELS, LABELS, COLORS, MARKERS and LINESTYLES are live views of the registry. The built-in
palette is Paul Tol's high-contrast scheme plus black: its four entries have well separated
lightness (black < dark blue < red < yellow), so the models stay apart when printed in gray.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display anywhere in the pipeline

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from .. import families
from ..io import atomic_path

MODELS = families.Registry()  # iterates over the names in canonical order
LABELS = families.Attribute("label")
COLORS = families.Attribute("color")
MARKERS = families.Attribute("marker")
LINESTYLES = families.Attribute("linestyle")
# Filled markers with a dark edge: the yellow AE marker stays visible on white and in gray.
EDGE = "#222222"

# Reference (non-VAE) rows and other secondary lines.
REFERENCE_STYLES = [
    {"color": "#555555", "linestyle": (0, (1, 1)), "linewidth": 1.2},
    {"color": "#999999", "linestyle": (0, (5, 2, 1, 2)), "linewidth": 1.2},
    {"color": "#777777", "linestyle": (0, (3, 3)), "linewidth": 1.2},
]

# Secondary contrasts (e.g. GMM against KDE, initial against trained weights).
PAIR_STYLES = {
    "gmm": {"color": "#004488", "linestyle": "-", "marker": "o"},
    "kde": {"color": "#BB5566", "linestyle": "--", "marker": "s"},
}
FIT_STYLES = {
    "norm": {"color": "#000000", "linestyle": "-", "label": "Normal"},
    "laplace": {"color": "#BB5566", "linestyle": "--", "label": "Laplace"},
    "t": {"color": "#004488", "linestyle": ":", "label": "Student-t"},
}

DATASET_LABELS = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "digits": "digits (8x8)",
    "synthetic": "synthetic (8x8)",
}

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.5,
    "lines.markersize": 5,
    "errorbar.capsize": 3,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # editable text in the PDF
    "svg.fonttype": "none",
    "image.interpolation": "nearest",
}


def apply() -> None:
    """Set the shared rcParams (idempotent)."""
    matplotlib.rcParams.update(RC)


def model_label(model: str) -> str:
    return LABELS.get(model, model)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def model_style(model: str, line: bool = True) -> dict:
    """Keyword arguments for ax.plot / ax.errorbar for one model."""
    style = {
        "color": COLORS.get(model, "#666666"),
        "marker": MARKERS.get(model, "x"),
        "markeredgecolor": EDGE,
        "markeredgewidth": 0.6,
        "label": model_label(model),
    }
    style["linestyle"] = LINESTYLES.get(model, "-") if line else "none"
    return style


def ordered_models(models) -> list[str]:
    """The models present, in the canonical order."""
    present = list(dict.fromkeys(models))
    return [m for m in MODELS if m in present] + [m for m in present if m not in MODELS]


def latent_dim_axis(ax, dims, label: str = "latent dimension d (degrees of freedom)") -> None:
    """Log-scaled x axis with a tick at every configured latent dimension."""
    dims = sorted({int(d) for d in dims})
    if len(dims) > 1 and min(dims) > 0:
        ax.set_xscale("log")
        pad = max((max(dims) / min(dims)) ** 0.06, 1.12)  # room for the sideways-shifted markers
        ax.set_xlim(min(dims) / pad, max(dims) * pad)
    ax.xaxis.set_major_locator(FixedLocator(dims))
    ax.xaxis.set_minor_locator(NullLocator())
    fmt = ScalarFormatter()
    fmt.set_scientific(False)
    ax.xaxis.set_major_formatter(fmt)
    ax.set_xlabel(label)


def figure(nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = (3.2, 2.6), **kwargs):
    apply()
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             squeeze=False, **kwargs)
    return fig, axes


def save(fig, out: str | Path) -> list[Path]:
    """Write ``out`` as PNG and PDF (``out`` may name either or have no suffix); returns paths.

    Files are written next to their final names and renamed into place, so an interrupted job
    never leaves a truncated figure behind."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".png", ".pdf") else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        final = stem.with_name(f"{stem.name}.{ext}")
        with atomic_path(final, suffix=f".tmp.{ext}") as tmp:
            fig.savefig(tmp, format=ext, metadata=_metadata(ext))
        paths.append(final)
    plt.close(fig)
    return paths


def _metadata(ext: str) -> dict:
    # No creation date: identical inputs give byte-identical PDFs (and stable report hashes).
    if ext == "pdf":
        return {"Creator": "vaepriors", "Producer": "matplotlib", "CreationDate": None}
    return {"Software": "vaepriors (matplotlib)"}


def legend_below(fig, axes, ncol: int | None = None, **kwargs):
    """One legend for the whole figure, below the panels, from the first panel with handles."""
    handles, labels = [], []
    for ax in list(getattr(axes, "flat", axes)):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    if not handles:
        return None
    # Models first, in their canonical order, then everything else (references, floors, keys).
    rank = {LABELS[m]: i for i, m in enumerate(MODELS)}
    order = sorted(range(len(labels)), key=lambda i: (rank.get(labels[i], len(rank)), i))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    # Anchored under the figure; savefig's tight bounding box takes it in.
    return fig.legend(handles, labels, loc="upper center", ncol=ncol or min(len(labels), 6),
                      bbox_to_anchor=(0.5, 0.0), **kwargs)
