"""Sample quality without a pretrained network: a Fréchet distance in the feature space of a small
MLP classifier that the pipeline trains on the same dataset.

FID (Heusel et al. 2017) compares the Gaussian moments of Inception features of generated and real
images. No pretrained network is available offline, so the feature map here is the last hidden
layer (after its ReLU) of an MLP classifier trained on the dataset's training split; its test
accuracy is recorded next to it so that a reader can judge the feature space.

Images enter the classifier as pixel intensities in [0, 1]. Generated images are the decoder's
Bernoulli means sigmoid(logits); real images are x / 255, which is exactly the Bernoulli mean under
the dynamic binarisation the models are trained with. Both sides are therefore "pixel
probabilities" of the same kind.

    FD = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2})

in squared feature units. The estimate is biased upwards for finite samples, so every comparison
uses the same number of generated images, and the distance between that many held-out *real*
training images and the test images is reported as the floor a perfect generator would reach.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.continuous import as_points, is_continuous
from ..io import save_torch

log = logging.getLogger(__name__)

FEATURE_BATCH = 2000


# --- the distance ----------------------------------------------------------------------------------

def gaussian_moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (n, k), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_from_moments(mu1, s1, mu2, s2) -> float:
    """Fréchet (2-Wasserstein squared) distance between N(mu1, s1) and N(mu2, s2).

    Tr((S1 S2)^{1/2}) is computed as the sum of square roots of the eigenvalues of the symmetric
    PSD matrix S1^{1/2} S2 S1^{1/2}, which has the same spectrum and no complex round-off."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)
    return max(value, 0.0)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussian moments of two feature sets (rows = samples)."""
    return frechet_from_moments(*gaussian_moments(features_a), *gaussian_moments(features_b))


# --- the feature network ---------------------------------------------------------------------------

class FeatureClassifier(nn.Module):
    """input -> hidden ... (ReLU) -> classes; features() is the last hidden layer after its ReLU."""

    def __init__(self, input_dim: int, hidden: list[int], n_classes: int):
        super().__init__()
        self.input_dim, self.hidden, self.n_classes = int(input_dim), [int(h) for h in hidden], int(n_classes)
        layers: list[nn.Module] = []
        sizes = [self.input_dim, *self.hidden]
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(sizes[-1], self.n_classes)

    def init_kwargs(self) -> dict:
        return {"input_dim": self.input_dim, "hidden": self.hidden, "n_classes": self.n_classes}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


@torch.no_grad()
def features_of(clf: FeatureClassifier, images: np.ndarray | torch.Tensor) -> np.ndarray:
    """Features of images given as pixel intensities in [0, 1], shape (n, D)."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    clf.eval()
    return torch.cat([clf.features(x[s : s + FEATURE_BATCH])
                      for s in range(0, len(x), FEATURE_BATCH)]).double().numpy()


@torch.no_grad()
def accuracy(clf: FeatureClassifier, x: np.ndarray, y: np.ndarray) -> float:
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    pred = torch.cat([clf(xt[s : s + FEATURE_BATCH]).argmax(-1) for s in range(0, len(xt), FEATURE_BATCH)])
    return float((pred.numpy() == np.asarray(y)).mean())


def train_classifier(arrays: dict, hidden: list[int], epochs: int, seed: int = 0, lr: float = 1e-3,
                     batch_size: int = 64) -> tuple[FeatureClassifier, dict]:
    """Train on the training split in the models' data space (images: x / 255) with Adam; keep the
    epoch with the best validation accuracy.

    For images half of each batch is a fresh Bernoulli draw, so the features also respond sensibly
    to binary-looking inputs; the other half stays grey."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(as_points(arrays, "x_train"))
    y = torch.from_numpy(np.asarray(arrays["y_train"])).long()
    x_val, x_test = as_points(arrays, "x_val"), as_points(arrays, "x_test")
    images = not is_continuous(arrays)
    clf = FeatureClassifier(x.shape[1], hidden, int(arrays["n_classes"]))
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    best, best_state, history = -1.0, None, []
    for epoch in range(epochs):
        clf.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for s in range(0, len(x), batch_size):
            idx = perm[s : s + batch_size]
            xb = x[idx]
            if images:
                half = len(xb) // 2
                xb = torch.cat([torch.bernoulli(xb[:half], generator=gen), xb[half:]])
            loss = loss_fn(clf(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        val_acc = accuracy(clf, x_val, arrays["y_val"])
        history.append({"epoch": epoch + 1, "train_loss": total / len(x), "val_acc": val_acc})
        log.info("classifier epoch %d: train loss %.4f, validation accuracy %.4f", epoch + 1,
                 total / len(x), val_acc)
        if val_acc > best:
            best, best_state = val_acc, {k: v.clone() for k, v in clf.state_dict().items()}
    clf.load_state_dict(best_state)
    clf.eval()
    info = {
        "test_accuracy": accuracy(clf, x_test, arrays["y_test"]),
        "val_accuracy": best,
        "best_epoch": max(history, key=lambda r: r["val_acc"])["epoch"],
        "epochs": epochs,
        "hidden": list(hidden),
        "feature_dim": int(hidden[-1]),
        "n_train": len(x),
        "n_test": len(x_test),
        "seed": seed,
        "history": history,
        "feature_layer": "last hidden layer after ReLU",
        "input": ("pixel intensities in [0, 1] (x / 255; generated: Bernoulli means)" if images
                  else "continuous points as they are (generated: the likelihood's means)"),
    }
    return clf, info


def save_classifier(clf: FeatureClassifier, path: str | Path) -> None:
    save_torch({"kwargs": clf.init_kwargs(), "state_dict": clf.state_dict()}, path)


def load_classifier(path: str | Path) -> FeatureClassifier:
    """The feature classifier; an unreadable file is a TorchFileError naming it."""
    from ..models import TorchFileError, read_torch_file, regenerate_hint

    try:
        payload = read_torch_file(path)
        clf = FeatureClassifier(**payload["kwargs"])
        clf.load_state_dict(payload["state_dict"])
    except TorchFileError as exc:
        raise TorchFileError(f"{exc}. {regenerate_hint(path)}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TorchFileError(f"{path}: not a feature classifier ({type(exc).__name__}: {exc}). "
                             f"{regenerate_hint(path)}") from None
    return clf.eval()


# --- generated images --------------------------------------------------------------------------------

@torch.no_grad()
def decode_means(model, z: torch.Tensor, batch: int = 2000) -> np.ndarray:
    """The likelihood's means of decode(z) (Bernoulli: sigmoid of the logits) as a float array (n, D)."""
    model.eval()
    return torch.cat([model.likelihood.to_input(model.decode(z[s : s + batch]))
                      for s in range(0, len(z), batch)]).double().numpy()


@torch.no_grad()
def prior_samples(model, n: int, seed: int) -> np.ndarray:
    """n Bernoulli-mean images decoded from z ~ p(z) (AE: its ex-post GMM), seeded."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        z = model.prior().sample((n,))
    return decode_means(model, z.to(next(model.parameters()).dtype))


class FeatureReference:
    """Test-image features and moments of one dataset, computed once and reused for every run."""

    def __init__(self, clf: FeatureClassifier, arrays: dict, n: int, seed: int = 0):
        self.clf = clf
        x_test = as_points(arrays, "x_test", np.float64)
        x_train = as_points(arrays, "x_train", np.float64)
        self.n = int(min(n, len(x_train)))
        self.moments = gaussian_moments(features_of(clf, x_test))
        # The floor: as many real (training) images as each generator contributes.
        rng = np.random.default_rng(seed)
        real = x_train[rng.choice(len(x_train), self.n, replace=False)]
        self.floor = self.score(real)

    def score(self, images: np.ndarray) -> float:
        return frechet_from_moments(*gaussian_moments(features_of(self.clf, images)), *self.moments)


# --- figure 6 ------------------------------------------------------------------------------------

def run_key(path: str | Path) -> dict:
    """{model, latent_dim, seed} of results/models/{dataset}/{model}/d{dim}/s{seed}/model.pt."""
    p = Path(path).parent
    return {"dataset": p.parent.parent.parent.name, "model": p.parent.parent.name,
            "latent_dim": int(p.parent.name.lstrip("d")), "seed": int(p.name.lstrip("s"))}


def sample_quality_rows(model_paths, reference: FeatureReference, n: int) -> list[dict]:
    from ..models import load_model

    rows = []
    for path in model_paths:
        key = run_key(path)
        model = load_model(path)
        images = prior_samples(model, n, seed=key["seed"])
        rows.append({**key, "fd": reference.score(images), "n_samples": n, "fd_floor": reference.floor})
        log.info("%s: FD %.3f (floor %.3f)", path, rows[-1]["fd"], reference.floor)
    return rows


def plot_sample_quality(table, classifiers: dict, out: str | Path) -> list[Path]:
    """One panel per dataset: FD of prior samples against d, one line per model (mean, sd error
    bars over seeds); the real-image floor as a horizontal line; the classifier's test accuracy in
    the panel title."""
    import pandas as pd

    from . import style
    from .results import _dodge

    table = pd.DataFrame(table)
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = style.figure(1, max(len(datasets), 1), panel=(3.6, 3.0))
    for ax, dataset in zip(axes[0], datasets):
        block = table[table["dataset"] == dataset]
        models = style.ordered_models(block["model"].unique())
        for i, model in enumerate(models):
            g = block[block["model"] == model].groupby("latent_dim")["fd"]
            mean, sd = g.mean(), g.std().fillna(0.0)
            ax.errorbar(_dodge(mean.index.to_numpy(float), i, len(models)), mean.values, yerr=sd.values,
                        **style.model_style(model))
        ax.axhline(float(block["fd_floor"].mean()), color="#777777", linestyle=(0, (1, 1)),
                   label="real training images (floor)")
        style.latent_dim_axis(ax, block["latent_dim"])
        ax.set_yscale("log")
        ax.set_ylabel("Fréchet distance to test images\n(squared feature units, log scale)")
        acc = classifiers.get(dataset, {}).get("test_accuracy")
        extra = f"\nfeature classifier test accuracy {acc:.3f}" if acc is not None else ""
        ax.set_title(f"{style.dataset_label(dataset)}{extra}")
    fig.tight_layout()
    style.legend_below(fig, axes, ncol=3)
    return style.save(fig, out)
