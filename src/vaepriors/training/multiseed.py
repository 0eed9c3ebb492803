"""Many seeds of one configuration trained together in one process, with stacked parameters.

`train_group` gives every seed exactly what `vaepriors.training.run.train_run` gives it (model.pt,
history.csv, config.json in its run directory; the same weights and history up to float rounding)
while sharing each step's work: the parameters of the G seeds are stacked along a leading
dimension and every linear layer runs as one batched matmul (``torch.baddbmm``, which on CPU gives
each seed the same numbers as its own ``F.linear``), the losses of all seeds are summed so one
backward pass yields each seed's own gradient, and one fused Adam updates all seeds at once (Adam
is elementwise, so each seed's slice follows its own trajectory).

What stays per seed, as in the single-seed Trainer:
  * initialisation: ``torch.manual_seed(seed)`` before building that seed's model;
  * data: the seed's own generator draws each epoch's binarisation and batch order;
  * posterior noise: each seed keeps its own torch RNG state, swapped in around that seed's draws
    by the posterior itself inside ``vaepriors.distributions.noise.noise_groups`` (outside any
    batched op: the vMF rejection sampler consumes a data-dependent number of uniforms); the
    differentiable part of the sample (reparameterisation, implicit vMF gradient, KL, Bessel
    functions) then runs once for all seeds;
  * early stopping: a seed that stops leaves the group: the stacked parameters and the Adam state
    are rebuilt without it, so its weights and moments are never touched again.

Families: a family whose class sets ``stacks_seeds`` is stacked with its own loss, unchanged (its
after-training step, the AE's ex-post density, then runs per seed exactly as train_run does). The
others (GMM-VAE: pre-training and a scikit-learn mixture initialisation per seed) are routed to the
single-seed trainer, one seed after another, with a log message saying so.

Checkpoints: one group checkpoint per epoch (atomic, last two kept) in the first seed's run
directory under ``group-checkpoints/``; a killed group resumes from it, and a checkpoint of another
configuration or seed set is never resumed.  The history column ``seconds`` is the wall time of the
group's epoch (all seeds together).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import code_dim, families
from ..data.prepare import load_processed
from ..distributions.noise import noise_groups
from ..models import LatentVariableModel
from ..threads import flush_denormals, limit_threads
from .checkpoint import CheckpointDir
from .run import model_for, train_run, write_run
from .trainer import (
    EVAL_BATCH,
    NonFiniteLossError,
    TrainData,
    kl_weight,
    make_optimizer,
    resolve_device,
)

log = logging.getLogger(__name__)

# the families whose class says they stack (`stacks_seeds`); the others train seed after seed
STACKED_FAMILIES = families.Where("stacks_seeds")
TERMS = ("elbo", "rec", "kl")


# Rows binarised per torch.rand call: the uniforms come out of the generator in the same order as
# one call for the whole set (checked in the tests), without a float copy of the set per seed.
BINARIZE_ROWS = 4096


def draw_epoch_bool(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """trainer.draw_epoch with the binarisation kept as bool: 1 byte a pixel, as G seeds hold G
    binarised copies of the training set."""
    xb = torch.empty(x.shape, dtype=torch.bool)
    for s in range(0, len(x), BINARIZE_ROWS):
        part = x[s : s + BINARIZE_ROWS]
        uniform = torch.rand(part.shape, generator=generator, dtype=x.dtype)
        torch.lt(uniform, part, out=xb[s : s + len(part)])
    perm = torch.randperm(len(xb), generator=generator)
    return xb, perm


# --- per-seed RNG for posterior noise ------------------------------------------------------------

class _NoiseRng:
    """One seed's torch RNG state (CPU, and CUDA when the device is a GPU), swapped in on demand."""

    def __init__(self, seed: int, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        saved = self._get()
        torch.manual_seed(seed)  # what Trainer.__init__ does before training
        self.state = self._get()
        self._set(saved)

    def _get(self):
        cpu = torch.get_rng_state()
        return (cpu, torch.cuda.get_rng_state(self.device)) if self.cuda else (cpu,)

    def _set(self, state) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.device)

    @contextmanager
    def active(self):
        saved = self._get()
        self._set(self.state)
        try:
            yield
        finally:
            self.state = self._get()
            self._set(saved)


# --- stacked forward pass ------------------------------------------------------------------------

class _StackedLinear(torch.autograd.Function):
    """y = x W^T + b for each seed: x (G, B, in), W (G, out, in), b (G, out).

    The forward is baddbmm on W^T (the layout F.linear hands to the GEMM, so each seed gets its own
    F.linear's numbers); the backward forms dL/dW directly in W's layout, as addmm's backward does,
    instead of autograd's bmm backward, whose transposed result costs a full copy of every weight
    gradient per step."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


class _StackedLinearModule(nn.Module):
    """Stands in for an nn.Linear of the template: applies each seed's slice of the stacked weight."""

    def __init__(self, params: dict[str, torch.Tensor], name: str):
        super().__init__()
        self.params, self.name = params, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StackedLinear.apply(x, self.params[f"{self.name}.weight"], self.params[f"{self.name}.bias"])


class _Stack:
    """The parameters of G models of one family stacked along dim 0, and the family's own loss on
    them: a copy of the model whose linear layers apply the stacked weights (so every tensor gets a
    leading seed dimension), run inside noise groups (each seed's posterior noise from its own RNG).
    No family-specific code: any family whose parameters all sit in nn.Linear layers and whose
    posterior draws through vaepriors.distributions.noise stacks."""

    def __init__(self, templates: list[LatentVariableModel], params: dict[str, torch.Tensor]):
        self.templates = templates  # one per seed in the group: buffers, priors, loss helpers
        self.params = params
        self.model = copy.deepcopy(templates[0])
        for name, module in list(self.model.named_modules()):
            if isinstance(module, nn.Linear):
                parent, _, child = name.rpartition(".")
                self.model.get_submodule(parent).register_module(child, _StackedLinearModule(params, name))
        leftover = [n for n, _ in self.model.named_parameters()]
        if leftover:
            raise TypeError(f"multiseed: {templates[0].name} has parameters outside linear layers "
                            f"({', '.join(leftover)}); it cannot be stacked")

    @classmethod
    def from_models(cls, models: list[LatentVariableModel], device: torch.device) -> _Stack:
        names = [n for n, _ in models[0].named_parameters()]
        params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
                  .to(device).requires_grad_() for n in names}
        return cls(models, params)

    def subset(self, keep: list[int]) -> _Stack:
        params = {n: p.detach()[keep].clone().requires_grad_() for n, p in self.params.items()}
        return _Stack([self.templates[i] for i in keep], params)

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        """Seed i's full state dict (its template's buffers, its slice of the parameters)."""
        state = copy.deepcopy(self.templates[i].state_dict())
        for name, p in self.params.items():
            state[name] = p.detach()[i].clone()
        return state

    def loss(self, x: torch.Tensor, beta: float, rngs: list[_NoiseRng]) -> dict[str, torch.Tensor]:
        """x: (G, B, D) float in {0, 1}. Returns per-seed batch means, each of shape (G,)."""
        before = torch.get_rng_state()
        with noise_groups([rng.active for rng in rngs]):
            terms = self.model.loss(x, beta)
        # Every draw of a stacked family is made in its seed's stream, which leaves the global one
        # untouched: a posterior drawing outside the noise groups would tie the seeds together.
        if not torch.equal(before, torch.get_rng_state()):
            raise RuntimeError(f"multiseed: the {self.model.name} posterior drew noise outside "
                               "vaepriors.distributions.noise groups; its family cannot stack seeds")
        return terms


# --- the group trainer ---------------------------------------------------------------------------

def _fingerprint(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _check_finite(terms: dict[str, torch.Tensor], seeds: list[int], where: str) -> None:
    for name, value in terms.items():
        bad = ~torch.isfinite(value.detach())
        if bad.any():
            i = int(bad.nonzero()[0, 0])
            raise NonFiniteLossError(f"seed {seeds[i]}: non-finite {name} ({value[i].item()}) at {where}")


class GroupTrainer:
    """The epoch loop of Trainer for several seeds at once (see the module docstring)."""

    def __init__(self, models, data: TrainData, train_cfg: dict, seeds: list[int], run_dirs,
                 run_config: dict | None = None, progress: bool = True):
        if len(models) != len(seeds) or len(seeds) != len(run_dirs):
            raise ValueError("multiseed: one model and one run directory per seed")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"multiseed: repeated seeds {seeds}")
        self.cfg = train_cfg
        self.seeds = [int(s) for s in seeds]
        self.device = resolve_device(train_cfg["device"])
        self.data = data
        self.progress = progress
        self.run_dirs = [Path(d) for d in run_dirs]
        self.checkpoints = CheckpointDir(self.run_dirs[0] / "group-checkpoints")
        self.fingerprint = _fingerprint({"seeds": self.seeds, "run_dirs": [str(d) for d in self.run_dirs],
                                         "train": train_cfg, **(run_config or {})})
        n = len(seeds)
        for m in models:
            m.to(self.device)
        self.stack = _Stack.from_models(models, self.device)
        self.all_templates = list(models)
        self.active = list(range(n))  # seed indices still training, in stack order
        self.noise = [_NoiseRng(s, self.device) for s in self.seeds]
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        self.optimizer = make_optimizer(self.stack.params.values(), train_cfg["lr"])
        self.epoch = 0
        self.history: list[list[dict]] = [[] for _ in range(n)]
        self.best_elbo = [-float("inf")] * n
        self.best_state: list[dict | None] = [None] * n
        self.bad_epochs = [0] * n
        self.epochs = [0] * n

    # --- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "epoch": self.epoch,
            "active": self.active,
            "params": {n: p.detach() for n, p in self.stack.params.items()} if self.active else {},
            "optimizer": self.optimizer.state_dict() if self.active else {},
            "noise_rng": [list(r.state) for r in self.noise],
            "data_rng": [g.get_state() for g in self.generators],
            "history": self.history,
            "best_elbo": self.best_elbo,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "epochs": self.epochs,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.active = list(state["active"])
        if self.active:
            params = {n: p.to(self.device).requires_grad_() for n, p in state["params"].items()}
            self.stack = _Stack([self.all_templates[i] for i in self.active], params)
            self.optimizer = make_optimizer(self.stack.params.values(), self.cfg["lr"])
            self.optimizer.load_state_dict(state["optimizer"])
        for rng, s in zip(self.noise, state["noise_rng"]):
            rng.state = tuple(s)
        for g, s in zip(self.generators, state["data_rng"]):
            g.set_state(s)
        self.epoch = state["epoch"]
        self.history = state["history"]
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

    @flush_denormals()
    def train_epoch(self) -> list[dict[str, float]]:
        beta = kl_weight(self.epoch, self.cfg["warmup_epochs"])
        bs = self.cfg["batch_size"]
        draws = [draw_epoch_bool(self.data.x_train, self.generators[i]) for i in self.active]
        n = len(self.data.x_train)
        totals = [dict.fromkeys(TERMS, 0.0) for _ in self.active]
        rngs = [self.noise[i] for i in self.active]
        bar = tqdm(range(0, n, bs), desc=f"epoch {self.epoch + 1}/{self.cfg['max_epochs']} "
                   f"({len(self.active)} seeds)", disable=not self.progress, leave=False, mininterval=2)
        for b, start in enumerate(bar):
            x = torch.stack([xb.index_select(0, perm[start : start + bs]) for xb, perm in draws])
            x = x.to(device=self.device, dtype=self.data.x_train.dtype)
            terms = self.stack.loss(x, beta, rngs)
            _check_finite(terms, self._seeds(), f"epoch {self.epoch + 1}, batch {b + 1}")
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].sum().backward()
            self.optimizer.step()
            values = torch.stack([terms[k].detach() for k in TERMS]).tolist()
            for j, tot in enumerate(totals):
                for k, key in enumerate(TERMS):
                    tot[key] += values[k][j] * x.shape[1]
        return [{"beta": beta, **{f"train_{k}": v / n for k, v in tot.items()}} for tot in totals]

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """evaluate_elbo of the Trainer for every active seed (single sample, beta = 1)."""
        x = self.data.xb_val
        g = len(self.active)
        totals = [dict.fromkeys(TERMS, 0.0) for _ in range(g)]
        rngs = [self.noise[i] for i in self.active]
        for start in range(0, len(x), EVAL_BATCH):
            xb = x[start : start + EVAL_BATCH].to(self.device)
            terms = self.stack.loss(xb.expand(g, *xb.shape), 1.0, rngs)
            values = torch.stack([terms[k] for k in TERMS]).tolist()
            for j, tot in enumerate(totals):
                for k, key in enumerate(TERMS):
                    tot[key] += values[k][j] * len(xb)
        return [{key: v / len(x) for key, v in tot.items()} for tot in totals]

    @flush_denormals()
    def fit(self) -> list[dict[str, Any]]:
        resumed = self.resume()
        patience, max_epochs = self.cfg["patience"], self.cfg["max_epochs"]
        while self.active and self.epoch < max_epochs:
            t0 = time.perf_counter()
            rows = self.train_epoch()
            vals = self.evaluate()
            _check_finite({f"validation {k}": torch.tensor([v[k] for v in vals]) for k in TERMS},
                          self._seeds(), f"epoch {self.epoch + 1}")
            seconds = time.perf_counter() - t0
            for j, i in enumerate(self.active):
                row, val = rows[j], vals[j]
                row.update({f"val_{k}": v for k, v in val.items()})
                row["epoch"] = self.epoch + 1
                row["seconds"] = seconds
                self.history[i].append(row)
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
            log.info("epoch %d: %d seed(s) training, val elbo %s, %.1fs", self.epoch, len(self.active),
                     " ".join(f"{v['elbo']:.2f}" for v in vals), seconds)
        summaries = []
        for i, model in enumerate(self.all_templates):
            model.load_state_dict(self.best_state[i])
            best_epoch = max(self.history[i], key=lambda r: r["val_elbo"])["epoch"]
            summaries.append({"epochs": self.epochs[i], "best_epoch": best_epoch,
                              "best_val_elbo": self.best_elbo[i],
                              "stop_reason": ("early_stopping" if self.bad_epochs[i] >= patience
                                              else "max_epochs"),
                              "resumed": resumed})
        return summaries


# The whole job: torch's thread pool is created inside, so its threads flush denormals too.
@flush_denormals()
def train_group(
    data_path: str | Path,
    out_dirs: list[str | Path],
    dataset: str,
    model_name: str,
    latent_dim: int,
    seeds: list[int],
    train_cfg: dict,
    model_cfg: dict,
    progress: bool = True,
) -> list[dict]:
    """train_run for each seed (and its run directory), the seeds trained together. Returns the
    config.json records, one per seed."""
    seeds = [int(s) for s in seeds]
    if len(out_dirs) != len(seeds):
        raise ValueError(f"multiseed: {len(seeds)} seeds but {len(out_dirs)} run directories")
    if not families.get(model_name).stacks_seeds or len(seeds) == 1:
        if len(seeds) > 1:
            log.warning("multiseed: %s is not trained with stacked seeds (its class sets "
                        "stacks_seeds = False); training seeds %s one after another with the "
                        "single-seed trainer", model_name, seeds)
        return [train_run(data_path, d, dataset, model_name, latent_dim, s, train_cfg, model_cfg,
                          progress=progress) for s, d in zip(seeds, out_dirs)]

    limit_threads(train_cfg["threads"])
    out_dirs = [Path(d) for d in out_dirs]
    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)
    arrays = load_processed(data_path)
    data = TrainData.from_arrays(arrays)
    n_classes = int(arrays["n_classes"])
    models = []
    for seed in seeds:
        torch.manual_seed(seed)  # network initialisation, as train_run does
        model = model_for(model_name, latent_dim, data.x_train.shape[1], n_classes, model_cfg)
        model.init_output_bias(data.x_train.mean(0))
        models.append(model)
    run_config = {"dataset": dataset, "model": model_name, "latent_dim": latent_dim,
                  "code_dim": code_dim(model_name, latent_dim), "model_cfg": model_cfg,
                  "data": str(data_path)}
    log.info("multiseed: training %s d=%d seeds %s together", model_name, latent_dim, seeds)
    trainer = GroupTrainer(models, data, train_cfg, seeds, out_dirs, run_config=run_config,
                           progress=progress)
    summaries = trainer.fit()

    records = []
    for seed, out_dir, model, summary in zip(seeds, out_dirs, models, summaries):
        record = write_run(model, data, seed, Path(out_dir), trainer.history[seeds.index(seed)],
                           summary, run_config, train_cfg, model_cfg, trainer.device)
        records.append(record)
    trainer.checkpoints.clear()
    return records
