"""Laplace-VAE: factorised Laplace(mu, b) posterior, Laplace(0, 1) prior.

The KL has a closed form, KL(Lap(mu, b) || Lap(0, 1)) = -log b - 1 + |mu| + b exp(-|mu|/b) per
dimension: torch registers it (Laplace-Laplace, summed by Independent), so the base class's
analytic KL is used as it is. Draws are torch's inverse-CDF reparameterisation of a uniform.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution, Independent, Laplace

from ..distributions.normal import DiagonalLaplace
from .base import LatentVariableModel
from .gaussian import LOGVAR_MAX, LOGVAR_MIN

# log b range: the Gaussian families' log-variance range on the scale (b, like sigma, is a scale)
LOG_SCALE_MIN, LOG_SCALE_MAX = 0.5 * LOGVAR_MIN, 0.5 * LOGVAR_MAX


class LaplaceVAE(LatentVariableModel):
    name = "lvae"
    semi_supervised = True
    compare_to_baseline = True  # an alternative to the Gaussian: the summary gives its gap to the N-VAE
    label, color, marker, linestyle = "Laplace-VAE", "#AA3377", "<", (0, (3, 1, 1, 1, 1, 1))

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], **shared):
        super().__init__(input_dim, latent_dim, hidden, **shared)
        self.head = nn.Linear(self.hidden[-1], 2 * self.code_dim)  # location and log-scale

    def posterior(self, x: torch.Tensor) -> Distribution:
        loc, log_scale = self.head(self.body(x)).chunk(2, dim=-1)
        scale = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
        # no validation of network outputs, as for the other families
        return DiagonalLaplace(loc, scale, validate_args=False)

    def prior(self) -> Distribution:
        zero = self._zeros(self.code_dim)
        return Independent(Laplace(zero, torch.ones_like(zero)), 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))[..., : self.code_dim]
