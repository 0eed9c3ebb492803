"""G seeds of one family as one model: the trainer's view of a group of seeds.

What the trainer steps: for a run of one seed, `Single`, the model itself (its loss, unchanged);
for several seeds, `Stack`: the parameters of the G models stacked along a new leading dimension,
every linear layer applied as one batched matmul (``torch.baddbmm`` on CPU gives each seed the
numbers of its own ``F.linear``) and every other parameter (a mixture prior's means, VampPrior's pseudo-inputs)
handed to the family's code as a tensor with a leading seed dimension, which the family's prior
broadcasts over (``LatentVariableModel.prior_log_prob``). The losses of the seeds are summed, so
one backward pass gives each seed its own gradient, and one fused Adam (elementwise) moves each
seed's slice along its own trajectory.

Each seed draws its posterior noise from its own torch RNG stream (`NoiseRng`): the whole loss runs
in that stream for a single seed; stacked, the family's distributions draw the rows of seed i in
stream i through ``vaepriors.distributions.noise`` groups, and a draw outside them is refused.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn

from ..distributions.noise import noise_groups
from ..models import LatentVariableModel


class NoiseRng:
    """One seed's torch RNG state (CPU, and CUDA when the device is a GPU), swapped in on demand.
    Starts where ``torch.manual_seed(seed)`` starts."""

    def __init__(self, seed: int, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        saved = self._get()
        torch.manual_seed(seed)
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


class _StackedLinear(torch.autograd.Function):
    """y = x W^T + b for each seed: x (G, B, in), W (G, out, in), b (G, out).

    The forward is baddbmm on W^T (the layout F.linear hands to the GEMM); the backward forms dL/dW
    directly in W's layout, as addmm's backward does, instead of autograd's bmm backward, whose
    transposed result costs a full copy of every weight gradient per step."""

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

    @property
    def weight(self) -> torch.Tensor:  # (G, out, in)
        return self.params[f"{self.name}.weight"]

    @property
    def bias(self) -> torch.Tensor:  # (G, out)
        return self.params[f"{self.name}.bias"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StackedLinear.apply(x, self.weight, self.bias)


class Single:
    """A group of one: the model itself, run in the seed's RNG stream (swapped in once per epoch by
    noise_scope, not per step)."""

    def __init__(self, model: LatentVariableModel):
        self.model = model
        self.templates = [model]
        self.params = dict(model.named_parameters())

    def noise_scope(self, rngs: list[NoiseRng]):
        return rngs[0].active()

    def loss(self, x: torch.Tensor, beta: float, rngs: list[NoiseRng]) -> dict[str, torch.Tensor]:
        """x: (1, B, D), inside noise_scope. Returns the model's batch means (scalars)."""
        return self.model.loss(x[0], beta)

    def subset(self, keep: list[int]) -> Single:
        return self

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        return copy.deepcopy(self.model.state_dict())

    def load_params(self, params: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, p in self.params.items():
                p.copy_(params[name])


class Stack:
    """The parameters of G models of one family stacked along dim 0, and the family's own loss on
    them: a copy of the model whose linear layers apply the stacked weights and whose other
    parameters are the stacked tensors themselves, run inside noise groups."""

    def __init__(self, templates: list[LatentVariableModel], params: dict[str, torch.Tensor]):
        self.templates = templates  # one per seed in the group: buffers, hooks
        self.params = params
        self.model = copy.deepcopy(templates[0])
        for name, module in list(self.model.named_modules()):
            if isinstance(module, nn.Linear):
                parent, _, child = name.rpartition(".")
                self.model.get_submodule(parent).register_module(child, _StackedLinearModule(params, name))
        for name, _ in list(self.model.named_parameters()):
            parent, _, child = name.rpartition(".")
            owner = self.model.get_submodule(parent)
            if not isinstance(owner, LatentVariableModel):
                raise TypeError(f"{templates[0].name}: parameter {name} belongs to a "
                                f"{type(owner).__name__}; stacked seeds apply nn.Linear layers and "
                                "the family's own parameters only (train with seeds_per_job: 1)")
            delattr(owner, child)
            setattr(owner, child, params[name])  # (G, ...): the family broadcasts over seeds

    @classmethod
    def from_models(cls, models: list[LatentVariableModel], device: torch.device) -> Stack:
        names = [n for n, _ in models[0].named_parameters()]
        params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models])
                  .to(device).requires_grad_() for n in names}
        return cls(models, params)

    def subset(self, keep: list[int]) -> Stack:
        params = {n: p.detach()[keep].clone().requires_grad_() for n, p in self.params.items()}
        return Stack([self.templates[i] for i in keep], params)

    def state_dict_of(self, i: int) -> dict[str, torch.Tensor]:
        """Seed i's full state dict (its template's buffers, its slice of the parameters)."""
        state = copy.deepcopy(self.templates[i].state_dict())
        for name, p in self.params.items():
            state[name] = p.detach()[i].clone()
        return state

    @contextmanager
    def noise_scope(self, rngs: list[NoiseRng]):
        """Around an epoch (or a validation pass) of loss() calls, whose draws go to their seeds'
        streams and so leave the global one untouched: a distribution drawing outside the noise
        groups would tie the seeds together, and is refused before its epoch is kept."""
        before = torch.get_rng_state()
        yield
        if not torch.equal(before, torch.get_rng_state()):
            raise RuntimeError(f"the {self.model.name} posterior drew noise outside "
                               "vaepriors.distributions.noise groups; its seeds cannot be stacked "
                               "(train with seeds_per_job: 1)")

    def loss(self, x: torch.Tensor, beta: float, rngs: list[NoiseRng]) -> dict[str, torch.Tensor]:
        """x: (G, B, D) float in {0, 1}, inside noise_scope. Returns per-seed batch means, (G,)."""
        with noise_groups([rng.active for rng in rngs]):
            return self.model.loss(x, beta)

