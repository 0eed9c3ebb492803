"""p(x|z): what the decoder's output means (params.yaml ``model.likelihood``).

bernoulli: the output is logits of binary pixels; the data are grey levels in [0, 1], observed as a
fresh Bernoulli draw per epoch (Davidson et al. 2018; Burda et al. 2015).
gaussian: the output is the mean of N(x; mu(z), diag(sigma^2)) for continuous data, observed as
they are; sigma is one learned scale per dimension (the parameter ``obs_log_scale``, not a
function of z), so the held-out log-likelihood does not hinge on a guessed noise level and
cannot diverge by shrinking the variance at single training points.

A likelihood is stateless: its parameters live on the model itself, where stacked seeds
(training/stack.py) find them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# log sigma range of the Gaussian likelihood: the Gaussian posteriors' log-variance range on the
# scale (models/gaussian.py LOGVAR_MIN, LOGVAR_MAX halved)
LOG_SCALE_MIN, LOG_SCALE_MAX = -6.0, 4.0
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class Bernoulli:
    name = "bernoulli"
    binary = True  # observations are binary draws of grey levels: evaluated on a fixed binarisation

    def add_parameters(self, model: nn.Module) -> None:
        """No parameter: checkpoints of runs made before the likelihood was a setting still load."""

    def log_prob(self, model: nn.Module, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over the last dimension; ``out`` broadcasts x over sample dimensions."""
        return -F.binary_cross_entropy_with_logits(out, x.expand_as(out), reduction="none").sum(-1)

    def observe(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One observation of the training data as the model sees it: a Bernoulli draw."""
        return torch.bernoulli(x, generator=generator)

    def output_bias(self, mean: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
        """The decoder output bias that predicts ``mean`` (the logits of the pixel means)."""
        p = mean.clamp(eps, 1 - eps)
        return torch.log(p) - torch.log1p(-p)

    def to_input(self, a: torch.Tensor) -> torch.Tensor:
        """An unconstrained tensor as a point of the data space (VampPrior's pseudo-inputs)."""
        return torch.sigmoid(a)

    def from_input(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        """The inverse of to_input for data points (kept eps inside [0, 1], where it is finite)."""
        return torch.logit(x.clamp(eps, 1 - eps))


class Gaussian:
    name = "gaussian"
    binary = False

    def add_parameters(self, model: nn.Module) -> None:
        # zeros: no random draw, so the networks start as with any other likelihood
        model.obs_log_scale = nn.Parameter(torch.zeros(model.input_dim))

    def log_scale(self, model: nn.Module, out: torch.Tensor) -> torch.Tensor:
        s = model.obs_log_scale.to(out.dtype).clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
        # stacked seeds: (G, D) against outputs (G, ..., B, D)
        return s if s.dim() == 1 else s.view(s.shape[0], *[1] * (out.dim() - 2), s.shape[-1])

    def log_prob(self, model: nn.Module, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        log_scale = self.log_scale(model, out)
        z = (x - out) * torch.exp(-log_scale)
        return -(0.5 * z.square() + log_scale + LOG_SQRT_2PI).sum(-1)

    def observe(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x

    def output_bias(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def to_input(self, a: torch.Tensor) -> torch.Tensor:
        return a

    def from_input(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        return x.clone()


LIKELIHOODS = {cls.name: cls() for cls in (Bernoulli, Gaussian)}
DEFAULT = Bernoulli.name


def get(name: str):
    try:
        return LIKELIHOODS[name]
    except KeyError:
        raise ValueError(f"model.likelihood: unknown likelihood {name!r} "
                         f"({', '.join(LIKELIHOODS)})") from None
