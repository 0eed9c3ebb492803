"""Semi-supervised classification with the latent families: M2 alone on pixels and M1+M2 on the
codes of a model the grid trained (Kingma et al. 2014; Davidson et al. 2018, their M1+M2 table).

params.yaml's ``semi_supervised`` section says which runs there are: for every dataset, number
of labels and seed of the grid's ``seeds``, M2 on pixels for each of ``pixel_models``, and M2 over
the codes of each grid model ``m1_models`` x ``m1_dims`` (the same seed's run) for each of
``m2_models``; an empty ``labels`` list runs none. Protocol: the labelled set is the k-NN
evaluation's for the same seed and size (evaluation.knn.balanced_indices: balanced over classes,
from the training split), the rest of the training split unlabelled; the epoch with the best
validation accuracy is kept and its test accuracy reported. Each epoch sees a fresh binarisation
of the training images (M1+M2: a fresh draw of M1's posterior, as the authors' code samples M1's
q(z|x)); validation and test use the fixed binarisations (M1+M2: M1's codes of them, ``embed``).
File names live here so the rules (workflow/rules/semisup.smk) only wire them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, load_schema, parse_section
from .threads import flush_denormals

log = logging.getLogger(__name__)

SECTION = "semi_supervised"
ROOT = "results/semisup"
# Snakemake patterns of one run's result (workflow/rules/semisup.smk)
M1M2_RUN = ROOT + "/{dataset}/{m1}-d{dim}+{m2}/n{labels}/s{seed}.json"
PIXEL_RUN = ROOT + "/{dataset}/pixels+{m2}/n{labels}/s{seed}.json"
TABLE = "results/tables/semi_supervised"
FIGURE = "results/figures/semi_supervised"
# The keys of the section one run uses: its identity (the rules pass them, and only them).
RUN_KEYS = ("m2_dim", "hidden", "epochs", "patience", "lr", "batch_size", "alpha")
EVAL_BATCH = 1000


# --- configuration and runs -----------------------------------------------------------------------

def section(config: Mapping) -> dict:
    return dict(config.get(SECTION) or {})


def check(config: Mapping) -> None:
    """Every M2 family can be M2's latent. (M1+M2 runs only on the M1 runs the grid has: a
    narrowed grid, e.g. `--config models=[nvae]`, narrows the study with it.)"""
    from . import families

    ss = section(config)
    for key in ("m2_models", "pixel_models"):
        for m in ss.get(key, []):
            if not families.get(m).semi_supervised:
                raise ConfigError(f"{SECTION}.{key}: the family {m!r} cannot be M2's latent (it does "
                                  f"not declare semi_supervised)")


def runs(config: Mapping) -> list[dict]:
    """Every run of the section on the configuration's grid (a grid narrowed by --config narrows
    them): {dataset, m1, dim, m2, labels, seed, path} (m1, dim None: pixels)."""
    from .figures.targets import dims_of

    ss = section(config)
    out = []

    def m1_dims(m1):
        return [d for d in ss["m1_dims"] if d in dims_of(config, m1)]

    grid_m1 = [m for m in ss.get("m1_models", []) if m in config["models"]]
    for ds in [d for d in ss.get("datasets", []) if d in config["datasets"]]:
        for labels in ss["labels"]:
            for seed in config["seeds"]:
                for m2 in ss["pixel_models"]:
                    out.append({"dataset": ds, "m1": None, "dim": None, "m2": m2, "labels": labels,
                                "seed": seed})
                for m1 in grid_m1:
                    for dim in m1_dims(m1):
                        for m2 in ss["m2_models"]:
                            out.append({"dataset": ds, "m1": m1, "dim": dim, "m2": m2,
                                        "labels": labels, "seed": seed})
    for run in out:
        run["path"] = (PIXEL_RUN if run["m1"] is None else M1M2_RUN).format(**run)
    return out


def outputs(config: Mapping) -> list[str]:
    """The study's table and figure: built whenever the section is there (params.yaml has it); a
    section without labels gives an empty table."""
    if SECTION not in config:
        return []
    return [f"{TABLE}.csv", f"{TABLE}.md", f"{FIGURE}.png", f"{FIGURE}.pdf"]


def run_flags(config: Mapping) -> str:
    """The flags of the values one run uses, as the rules write them."""
    from .config import to_flags

    ss = section(config)
    return to_flags({k: ss[k] for k in RUN_KEYS})


def parse_run_flags(tokens: list[str]) -> dict:
    """A run's values from its flags (RUN_KEYS, all required), validated by the section's schema."""
    schema = copy.deepcopy(load_schema())
    sub = schema["properties"][SECTION]
    sub["required"] = list(RUN_KEYS)
    values = parse_section(tokens, SECTION, schema)
    extra = sorted(k for k in values if k not in RUN_KEYS and values[k] != [])
    if extra:
        raise ConfigError(f"{SECTION}: a run takes only {', '.join(RUN_KEYS)}; got {', '.join(extra)}")
    return {k: values[k] for k in RUN_KEYS}


# --- data ------------------------------------------------------------------------------------------

def labelled_split(y_train: np.ndarray, n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, unlabelled) indices of the training split: the labelled set is the k-NN
    evaluation's for this seed and size, the unlabelled set the rest."""
    from .evaluation.knn import balanced_indices

    labelled = balanced_indices(y_train, n_labels, seed)
    return labelled, np.setdiff1d(np.arange(len(y_train)), labelled)


class Pixels:
    """M2 alone: binary pixels, a fresh binarisation of the training images each epoch."""

    likelihood = "bernoulli"

    def __init__(self, arrays: dict):
        self.x = torch.from_numpy(np.asarray(arrays["x_train"])).float().div_(255.0)
        self.val = torch.from_numpy(np.asarray(arrays["xb_val"])).float()
        self.test = torch.from_numpy(np.asarray(arrays["xb_test"])).float()
        self.dim = self.x.shape[1]

    def train(self, generator: torch.Generator) -> torch.Tensor:
        from .training.trainer import binarize

        return binarize(self.x, generator)


class Codes(Pixels):
    """M1+M2: M1's codes; training points are a fresh draw of q(z|x) of a fresh binarisation."""

    likelihood = "gaussian"

    @torch.no_grad()
    def __init__(self, arrays: dict, m1: torch.nn.Module):
        super().__init__(arrays)
        self.m1 = m1.eval()
        self.val, self.test = (torch.from_numpy(m1.embed_all(x)).float() for x in (self.val, self.test))
        self.dim = self.val.shape[1]

    @torch.no_grad()
    def train(self, generator: torch.Generator) -> torch.Tensor:
        xb = super().train(generator)
        return torch.cat([self.m1.posterior(xb[s : s + EVAL_BATCH]).sample()
                          for s in range(0, len(xb), EVAL_BATCH)])


# --- training --------------------------------------------------------------------------------------

@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: np.ndarray) -> float:
    pred = torch.cat([model.classify(x[s : s + EVAL_BATCH]).argmax(-1) for s in range(0, len(x), EVAL_BATCH)])
    return float((pred.numpy() == np.asarray(y)).mean())


def fit(model, features, y_train: np.ndarray, labelled: np.ndarray, y_val: np.ndarray,
        y_test: np.ndarray, values: dict, seed: int, checkpoint_dir: str | Path,
        fingerprint: str = "", progress: bool = False) -> dict:
    """Train M2; one checkpoint per epoch (a killed run resumes where it stopped, with the same
    result). Returns {accuracy (test, at the best validation epoch), val_accuracy, best_epoch,
    epochs, stop_reason, history}. ``model`` holds the last epoch's weights afterwards."""
    from .training.checkpoint import CheckpointDir
    from .training.stack import NoiseRng
    from .training.trainer import NonFiniteLossError, make_optimizer

    checkpoints = CheckpointDir(checkpoint_dir)
    noise = NoiseRng(seed, torch.device("cpu"))
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model.parameters(), values["lr"])
    y = torch.from_numpy(np.asarray(y_train))
    lab = torch.from_numpy(np.asarray(labelled))
    unl = torch.from_numpy(np.setdiff1d(np.arange(len(y)), labelled))
    n_l, n_u, bs = len(lab), len(unl), values["batch_size"]
    steps = math.ceil(n_u / bs)
    per_step = math.ceil(n_l / steps)  # labelled points beside each unlabelled batch
    st = {"epoch": 0, "history": [], "best": None, "bad_epochs": 0, "stopped": False}
    saved = checkpoints.latest(fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        noise.state = tuple(saved["noise_rng"])
        generator.set_state(saved["data_rng"])
        st = saved["loop"]
    while not st["stopped"] and st["epoch"] < values["epochs"]:
        t0 = time.perf_counter()
        totals = {"loss": 0.0, "bound": 0.0, "ce": 0.0}
        model.train()
        with noise.active():
            x = features.train(generator)
            order_u = unl[torch.randperm(n_u, generator=generator)]
            order_l = lab[torch.cat([torch.randperm(n_l, generator=generator)
                                     for _ in range(math.ceil(steps * per_step / n_l))])]
            for b in range(steps):
                il = order_l[b * per_step : (b + 1) * per_step]
                terms = model.loss(x[il], y[il], x[order_u[b * bs : (b + 1) * bs]], n_l, n_u,
                                   values["alpha"])
                if not torch.isfinite(terms["loss"]):
                    raise NonFiniteLossError(f"non-finite M2 loss at epoch {st['epoch'] + 1}, batch {b + 1}")
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                for k in totals:
                    totals[k] += terms[k].item() / steps
        model.eval()
        row = {"epoch": st["epoch"] + 1, **{f"train_{k}": v for k, v in totals.items()},
               "val_acc": accuracy(model, features.val, y_val),
               "test_acc": accuracy(model, features.test, y_test),
               "seconds": time.perf_counter() - t0}
        st["history"].append(row)
        st["epoch"] += 1
        if st["best"] is None or row["val_acc"] > st["best"]["val_acc"]:
            st["best"], st["bad_epochs"] = row, 0
        else:
            st["bad_epochs"] += 1
        st["stopped"] = bool(values["patience"]) and st["bad_epochs"] >= values["patience"]
        checkpoints.save({"epoch": st["epoch"], "fingerprint": fingerprint, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(), "noise_rng": list(noise.state),
                          "data_rng": generator.get_state(), "loop": st}, st["epoch"])
        if progress:
            log.info("epoch %d: loss %.3f, val acc %.4f (best %.4f)", row["epoch"], row["train_loss"],
                     row["val_acc"], st["best"]["val_acc"])
    best = st["best"]
    return {"accuracy": best["test_acc"], "val_accuracy": best["val_acc"], "best_epoch": best["epoch"],
            "epochs": st["epoch"], "stop_reason": "early_stopping" if st["stopped"] else "max_epochs",
            "history": st["history"]}


# The whole job: torch's thread pool is created inside, so its threads flush denormals too.
@flush_denormals()
def run(data_path: str | Path, out: str | Path, dataset: str, m2_family: str, labels: int, seed: int,
        values: dict, m1_path: str | Path | None = None, threads: int = 1, progress: bool = False) -> dict:
    """One run of the study, written to ``out`` (JSON): M2 on pixels, or on the codes of the M1
    model at ``m1_path``."""
    from .config import run_metadata
    from .data.prepare import load_processed
    from .io import write_json
    from .models import load_model
    from .models.m2 import M2
    from .threads import limit_threads

    limit_threads(threads)
    out = Path(out)
    arrays = load_processed(data_path)
    m1 = load_model(m1_path) if m1_path is not None else None
    features = Pixels(arrays) if m1 is None else Codes(arrays, m1)
    y_train = np.asarray(arrays["y_train"])
    labelled, _ = labelled_split(y_train, labels, seed)
    torch.manual_seed(seed)  # network initialisation
    model = M2(m2_family, features.dim, int(arrays["n_classes"]), values["m2_dim"], values["hidden"],
               features.likelihood)
    identity = {"dataset": dataset, "m1": None if m1 is None else str(m1_path), "m2_model": m2_family,
                "labels": labels, "seed": seed, "values": values, "data": str(data_path)}
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    checkpoint_dir = out.parent / f"{out.stem}-checkpoints"
    t0 = time.perf_counter()
    result = fit(model, features, y_train, labelled, np.asarray(arrays["y_val"]),
                 np.asarray(arrays["y_test"]), values, seed, checkpoint_dir, fingerprint, progress)
    record = {**identity, "m1_model": None if m1 is None else m1.name,
              "m1_dim": None if m1 is None else m1.latent_dim, "m2_dim": values["m2_dim"],
              "likelihood": features.likelihood, "n_labelled": int(len(labelled)),
              "n_unlabelled": int(len(y_train) - len(labelled)), **result,
              "wall_seconds": time.perf_counter() - t0,
              "meta": run_metadata(seed=seed, split_seed=int(arrays["split_seed"]))}
    write_json(out, record)
    from .training.checkpoint import CheckpointDir

    CheckpointDir(checkpoint_dir).clear()  # the run is complete: its result is the JSON file
    checkpoint_dir.rmdir()
    return record
