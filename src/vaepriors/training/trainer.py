"""The one training loop, for a group of G >= 1 seeds of one configuration (a single run is a
group of one): in-memory data, dynamic binarisation, KL warm-up, early stopping, resume.

Protocol (Davidson et al. 2018; Burda et al. 2015): every epoch draws a fresh Bernoulli image of each
training example; validation uses the fixed binarisation from the prepared data; beta rises
linearly from 1/warmup to 1 over the warm-up epochs; the weights with the best validation ELBO are
kept and training stops after `patience` epochs without improvement.

Each seed of a group trains exactly as it would alone (its weights and history equal up to float
rounding, so no number depends on `seeds_per_job`): its own initialisation, its own data generator
(binarisations, batch order), its own posterior noise stream (stack.NoiseRng), its own
before-training step (a family's pre-training), and its own early stopping: a seed that stops
leaves the group, the stacked parameters and Adam moments rebuilt without it. One checkpoint per
epoch (atomic, last two kept; in the first seed's directory, `group-checkpoints/` for several
seeds) resumes a killed run, never one of another configuration or seed set. The history column
`seconds` is the wall time of the group's epoch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..io import write_text
from ..models import LatentVariableModel
from ..threads import flush_denormals
from .checkpoint import CheckpointDir
from .stack import NoiseRng, Single, Stack

log = logging.getLogger(__name__)
# The terms of model.loss the history records (besides "loss", which is minimised).
TERMS = ("elbo", "rec", "kl")
# Rows binarised per torch.rand call: the uniforms come out of the generator in the same order as
# one call for the whole set (checked in the tests), without a float copy of the set per seed.
BINARIZE_ROWS = 4096

HISTORY_COLUMNS = [
    "epoch", "beta", "train_elbo", "train_rec", "train_kl", "val_elbo", "val_rec", "val_kl", "seconds",
]
EVAL_BATCH = 1000


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf; the message names epoch, batch and quantity."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but torch sees no CUDA device here; set train.device to "
                           "auto (CUDA where present, else CPU) or cpu")
    return torch.device(name)


def kl_weight(epoch: int, warmup_epochs: int) -> float:
    """Linear warm-up: epoch 0 trains with 1/warmup, epoch warmup-1 and later with 1."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, (epoch + 1) / warmup_epochs)


@dataclass
class TrainData:
    """The splits a run needs, as float tensors: images in [0, 1] (train: grey levels, binarised
    afresh each epoch; val: binarised), or continuous points (``binary`` False) used as they are."""

    x_train: torch.Tensor
    xb_val: torch.Tensor
    binary: bool = True

    @classmethod
    def from_arrays(cls, arrays: dict) -> TrainData:
        from ..data.continuous import as_points, is_continuous

        x = torch.from_numpy(as_points(arrays, "x_train"))
        xb_val = torch.from_numpy(np.asarray(arrays["xb_val"])).float()
        return cls(x, xb_val, binary=not is_continuous(arrays))

    def check_likelihood(self, model: LatentVariableModel) -> None:
        """Binary draws need the Bernoulli likelihood, continuous points a density on R^D."""
        if model.likelihood.binary != self.binary:
            kind = "binarised images" if self.binary else "continuous points"
            raise ValueError(f"model.likelihood: {model.likelihood.name!r} does not fit {kind}; "
                             f"set model.likelihood to {'bernoulli' if self.binary else 'gaussian'}")

    def epoch(self, generator: torch.Generator, stacked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """An epoch's observation of the training set and its batch order, from ``generator``."""
        if not self.binary:
            return self.x_train, torch.randperm(len(self.x_train), generator=generator)
        return (draw_epoch_bool if stacked else draw_epoch)(self.x_train, generator)


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam with the fused kernel (one kernel per step instead of ~10 small ops per tensor: about
    3x faster steps on CPU for these MLPs; same update rule, float rounding aside)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or build without fused Adam
        return torch.optim.Adam(params, lr=lr)


def binarize(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One Bernoulli(x) draw per pixel: the same draws as torch.bernoulli(x, generator=generator)
    (a uniform from the generator compared with x, element by element), about 3x faster on CPU."""
    return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device).lt_(x)


def draw_epoch(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """An epoch's fresh binarisation of x and its batch order, both from the run's data generator."""
    xb = binarize(x, generator)
    perm = torch.randperm(len(xb), generator=generator)
    return xb, perm


def draw_epoch_bool(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """draw_epoch with the binarisation kept as bool: 1 byte a pixel, as G seeds hold G binarised
    copies of the training set."""
    xb = torch.empty(x.shape, dtype=torch.bool)
    for s in range(0, len(x), BINARIZE_ROWS):
        part = x[s : s + BINARIZE_ROWS]
        uniform = torch.rand(part.shape, generator=generator, dtype=x.dtype)
        torch.lt(uniform, part, out=xb[s : s + len(part)])
    perm = torch.randperm(len(xb), generator=generator)
    return xb, perm


def _fingerprint(run_config: dict) -> str:
    return hashlib.sha256(json.dumps(run_config, sort_keys=True).encode()).hexdigest()


def _check_finite(terms: dict[str, torch.Tensor | float], epoch: int, batch: int | None) -> None:
    """Epoch and batch are counted from 1, as in history.csv and the progress bar."""
    for name, value in terms.items():
        finite = math.isfinite(value) if isinstance(value, float) else bool(torch.isfinite(value).all())
        if not finite:
            where = f"epoch {epoch}" if batch is None else f"epoch {epoch}, batch {batch}"
            raise NonFiniteLossError(f"non-finite {name} ({float(value)}) at {where}")


@torch.no_grad()
def evaluate_elbo(model: LatentVariableModel, x: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Single-sample ELBO (beta = 1) averaged over x, in nats per example."""
    totals = {"elbo": 0.0, "rec": 0.0, "kl": 0.0}
    for start in range(0, len(x), EVAL_BATCH):
        xb = x[start : start + EVAL_BATCH].to(device)
        terms = model.loss(xb, beta=1.0)
        for key in totals:
            totals[key] += terms[key].item() * len(xb)
    return {key: value / len(x) for key, value in totals.items()}


class SeedSetup:
    """What a family's ``before_training`` sees of its seed's run: the seed, the data, the
    seed's data generator (``epoch_batches``) and
    ``pretrain``, a few epochs of another objective on the model alone."""

    def __init__(self, trainer: Trainer, model: LatentVariableModel, index: int):
        self.model = model
        self.seed = trainer.seeds[index]
        self.data = trainer.data
        self.cfg = trainer.cfg
        self.device = trainer.device
        self.progress = trainer.progress
        self.generator = trainer.generators[index]

    def epoch_batches(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh binarisation and a permutation, both from the seed's data generator."""
        return self.data.epoch(self.generator)

    @flush_denormals()
    def pretrain(self, loss_fn, epochs: int) -> None:
        """``epochs`` epochs minimising ``loss_fn(x)`` with a fresh Adam, on the seed's data order:
        a family's pre-training (GMM-VAE's autoencoder start)."""
        opt = make_optimizer(self.model.parameters(), self.cfg["lr"])
        bs = self.cfg["batch_size"]
        for epoch in range(epochs):
            xb, perm = self.epoch_batches()
            bar = tqdm(range(0, len(xb), bs), desc=f"seed {self.seed} pretrain {epoch + 1}/{epochs}",
                       disable=not self.progress, leave=False, mininterval=2)
            for b, start in enumerate(bar):
                x = xb.index_select(0, perm[start : start + bs]).to(self.device)
                loss = loss_fn(x)
                _check_finite({"pretrain reconstruction": loss}, epoch + 1, b + 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


class Trainer:
    """Trains models[i] (seed seeds[i], files in run_dirs[i]) for every i, together.

    A single model, seed and run directory may be passed as such: the group of one, with
    ``model`` and ``history`` of that seed and ``fit()`` returning its summary."""

    def __init__(self, models, data: TrainData, train_cfg: dict, seeds, run_dirs,
                 run_config: dict | None = None, progress: bool = True):
        self.one = isinstance(models, nn.Module)
        if self.one:
            models, seeds, run_dirs = [models], [seeds], [run_dirs]
        if not len(models) == len(seeds) == len(run_dirs) or not models:
            raise ValueError("one model and one run directory per seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"repeated seeds {seeds}")
        self.cfg = train_cfg
        self.seeds = [int(s) for s in seeds]
        self.device = resolve_device(train_cfg["device"])
        self.data = data
        self.progress = progress
        self.run_dirs = [Path(d) for d in run_dirs]
        self.checkpoints = CheckpointDir(self.run_dirs[0] / ("checkpoints" if len(seeds) == 1
                                                             else "group-checkpoints"))
        # A checkpoint written under another configuration or seed set must not be resumed.
        self.fingerprint = _fingerprint({"seeds": self.seeds, "run_dirs": [str(d) for d in self.run_dirs],
                                         "train": train_cfg, **(run_config or {})})
        self.models = [m.to(self.device) for m in models]
        n = len(self.seeds)
        self.noise = [NoiseRng(s, self.device) for s in self.seeds]
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.active = list(range(n))  # seed indices still training, in stack order
        self.stack: Single | Stack | None = None  # built in fit(), after the before-training steps
        self.optimizer: torch.optim.Optimizer | None = None
        self.epoch = 0
        self.histories: list[list[dict]] = [[] for _ in range(n)]
        self.best_elbo = [-float("inf")] * n
        self.best_state: list[dict | None] = [None] * n
        self.bad_epochs = [0] * n
        self.epochs = [0] * n

    # --- the group of one ----------------------------------------------------------------------
    @property
    def model(self) -> LatentVariableModel:
        return self._only(self.models)

    @property
    def history(self) -> list[dict]:
        return self._only(self.histories)

    def _only(self, per_seed: list):
        if len(per_seed) != 1:
            raise AttributeError("a group of several seeds has one per seed (models, histories)")
        return per_seed[0]

    # --- state ---------------------------------------------------------------------------------
    def _build(self, params: dict[str, torch.Tensor] | None = None) -> None:
        """The stack of the active seeds and its Adam (from the models, or from saved parameters)."""
        models = [self.models[i] for i in self.active]
        if len(self.seeds) == 1:
            self.stack = Single(models[0])
            if params is not None:
                self.stack.load_params(params)
        elif params is None:
            self.stack = Stack.from_models(models, self.device)
        else:  # stacked, even when one seed is left (its saved parameters and moments are)
            self.stack = Stack(models, {n: p.to(self.device).requires_grad_() for n, p in params.items()})
        self.optimizer = make_optimizer(self.stack.params.values(), self.cfg["lr"])

    def state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "active": self.active,
            "params": {n: p.detach() for n, p in self.stack.params.items()} if self.active else {},
            "optimizer": self.optimizer.state_dict() if self.active else {},
            "noise_rng": [list(r.state) for r in self.noise],
            "data_rng": [g.get_state() for g in self.generators],
            "history": self.histories,
            "best_elbo": self.best_elbo,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "epochs": self.epochs,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.active = list(state["active"])
        if self.active:
            self._build(state["params"])
            self.optimizer.load_state_dict(state["optimizer"])
        for rng, s in zip(self.noise, state["noise_rng"]):
            rng.state = tuple(s)
        for g, s in zip(self.generators, state["data_rng"]):
            g.set_state(s)
        self.epoch = state["epoch"]
        self.histories = state["history"]
        self.best_elbo = state["best_elbo"]
        self.best_state = state["best_state"]
        self.bad_epochs = state["bad_epochs"]
        self.epochs = state["epochs"]

    def resume(self) -> bool:
        state = self.checkpoints.latest(self.fingerprint)
        if state is None:
            return False
        self.load_state(state)
        return True

    def seed_setup(self, i: int) -> SeedSetup:
        return SeedSetup(self, self.models[i], i)

    def before_training(self) -> None:
        """Each seed's family step before epoch 1 (GMM-VAE's pre-training, VampPrior's
        pseudo-inputs), alone and in the seed's own noise stream, as a single run takes it."""
        for i, model in enumerate(self.models):
            with self.noise[i].active():
                model.before_training(self.seed_setup(i))

    def _drop(self, stopped: list[int]) -> None:
        """Remove stopped seeds: re-stack the parameters and the Adam moments without them."""
        keep = [j for j, i in enumerate(self.active) if i not in stopped]
        self.active = [self.active[j] for j in keep]
        if not self.active:
            return
        old = self.optimizer.state_dict()
        self.stack = self.stack.subset(keep)
        self.optimizer = make_optimizer(self.stack.params.values(), self.cfg["lr"])
        new = self.optimizer.state_dict()
        for k, st in old["state"].items():
            new["state"][k] = {key: (v[keep].clone() if key != "step" and v.dim() > 0 else v.clone())
                               for key, v in st.items()}
        self.optimizer.load_state_dict(new)

    # --- loop ----------------------------------------------------------------------------------
    def _seeds(self) -> list[int]:
        return [self.seeds[i] for i in self.active]

    def _where(self, j: int) -> str:
        """How a message names the j-th active seed: not at all in a group of one."""
        return "" if len(self.seeds) == 1 else f"seed {self._seeds()[j]}: "

    def _check(self, terms: dict[str, torch.Tensor], epoch: int, batch: int | None) -> None:
        for name, value in terms.items():
            value = value.detach().reshape(-1)
            bad = ~torch.isfinite(value)
            if bad.any():
                j = int(bad.nonzero()[0, 0])
                try:
                    _check_finite({name: value[j]}, epoch, batch)
                except NonFiniteLossError as exc:
                    raise NonFiniteLossError(self._where(j) + str(exc)) from None

    @flush_denormals()
    def train_epoch(self) -> list[dict[str, float]]:
        if self.stack is None:
            self._build()
        beta = kl_weight(self.epoch, self.cfg["warmup_epochs"])
        bs = self.cfg["batch_size"]
        # one seed: a float copy of the set, as it is fed; several: one byte per pixel and seed
        draws = [self.data.epoch(self.generators[i], stacked=len(self.active) > 1) for i in self.active]
        n = len(self.data.x_train)
        totals = [dict.fromkeys(TERMS, 0.0) for _ in self.active]
        rngs = [self.noise[i] for i in self.active]
        seeds = "" if len(self.active) == 1 else f" ({len(self.active)} seeds)"
        bar = tqdm(range(0, n, bs), desc=f"epoch {self.epoch + 1}/{self.cfg['max_epochs']}{seeds}",
                   disable=not self.progress, leave=False, mininterval=2)
        self.stack.model.train()
        with self.stack.noise_scope(rngs):
            for b, start in enumerate(bar):
                rows = [xb.index_select(0, perm[start : start + bs]) for xb, perm in draws]
                x = rows[0].unsqueeze(0) if len(rows) == 1 else torch.stack(rows)
                x = x.to(device=self.device, dtype=self.data.x_train.dtype)
                terms = self.stack.loss(x, beta, rngs)  # per seed: (G,), or () for a Single
                # the scalars in one host transfer, checked before they can reach the weights
                values = torch.stack([terms[k].detach() for k in ("loss", *TERMS)]).view(1 + len(TERMS), -1).tolist()
                if not all(math.isfinite(v) for row in values for v in row):
                    self._check(terms, self.epoch + 1, b + 1)
                self.optimizer.zero_grad(set_to_none=True)
                loss = terms["loss"]
                (loss if loss.dim() == 0 else loss.sum()).backward()
                self.optimizer.step()
                for j, tot in enumerate(totals):
                    for k, key in enumerate(TERMS):
                        tot[key] += values[k + 1][j] * x.shape[1]
        self.stack.model.eval()
        return [{"beta": beta, **{f"train_{k}": v / n for k, v in tot.items()}} for tot in totals]

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Single-sample validation ELBO (beta = 1) of every active seed."""
        x = self.data.xb_val
        rngs = [self.noise[i] for i in self.active]
        with self.stack.noise_scope(rngs):
            if isinstance(self.stack, Single):
                return [evaluate_elbo(self.stack.model, x, self.device)]
            g = len(self.active)
            totals = [dict.fromkeys(TERMS, 0.0) for _ in range(g)]
            for start in range(0, len(x), EVAL_BATCH):
                xb = x[start : start + EVAL_BATCH].to(self.device)
                terms = self.stack.loss(xb.expand(g, *xb.shape), 1.0, rngs)
                values = torch.stack([terms[k] for k in TERMS]).tolist()
                for j, tot in enumerate(totals):
                    for k, key in enumerate(TERMS):
                        tot[key] += values[k][j] * len(xb)
        return [{key: v / len(x) for key, v in tot.items()} for tot in totals]

    @flush_denormals()
    def fit(self):
        """Train to the end; the best weights of each seed are loaded into its model. Returns one
        summary per seed (the summary itself for a group of one)."""
        resumed = self.resume()
        if not resumed:
            self.before_training()
        patience, max_epochs = self.cfg["patience"], self.cfg["max_epochs"]
        while self.active and self.epoch < max_epochs:
            t0 = time.perf_counter()
            rows = self.train_epoch()
            vals = self.evaluate()
            self._check({f"validation {k}": torch.tensor([v[k] for v in vals]) for k in TERMS},
                        self.epoch + 1, None)
            seconds = time.perf_counter() - t0
            for j, i in enumerate(self.active):
                row, val = rows[j], vals[j]
                row.update({f"val_{k}": v for k, v in val.items()})
                row["epoch"] = self.epoch + 1
                row["seconds"] = seconds
                self.histories[i].append(row)
                if val["elbo"] > self.best_elbo[i]:
                    self.best_elbo[i] = val["elbo"]
                    self.best_state[i] = self.stack.state_dict_of(j)
                    self.bad_epochs[i] = 0
                else:
                    self.bad_epochs[i] += 1
                self.epochs[i] = self.epoch + 1
            self.epoch += 1
            stopped = [i for i in self.active if self.bad_epochs[i] >= patience]
            if stopped:
                log.info("early stopping of seed(s) %s after epoch %d", [self.seeds[i] for i in stopped],
                         self.epoch)
                self._drop(stopped)
            self.checkpoints.save(self.state(), self.epoch)
            log.info("epoch %d: %d seed(s) training, val elbo %s (best %s), beta %.3f, %.1fs",
                     self.epoch, len(self.active), " ".join(f"{v['elbo']:.2f}" for v in vals),
                     " ".join(f"{self.best_elbo[i]:.2f}" for i in range(len(self.seeds))),
                     rows[0]["beta"], seconds)
        summaries = []
        for i, model in enumerate(self.models):
            model.load_state_dict(self.best_state[i])
            best_epoch = max(self.histories[i], key=lambda r: r["val_elbo"])["epoch"]
            summaries.append({"epochs": self.epochs[i], "best_epoch": best_epoch,
                              "best_val_elbo": self.best_elbo[i],
                              "stop_reason": ("early_stopping" if self.bad_epochs[i] >= patience
                                              else "max_epochs"),
                              "resumed": resumed})
        return summaries[0] if self.one else summaries


def write_history(history: list[dict[str, float]], path: str | Path) -> None:
    import pandas as pd

    write_text(path, pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(index=False))
