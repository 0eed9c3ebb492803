"""PS-VAE (De Cao & Aziz 2020): Power Spherical posterior, uniform prior on the sphere S^d in R^(d+1),
the S-VAE's geometry with a sampler that needs no rejection step and no Bessel function."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from ..distributions.power_spherical import PowerSpherical
from ..distributions.sphere import HypersphericalUniform
from .base import LatentVariableModel
from .spherical import direction_and_concentration


class PSVAE(LatentVariableModel):
    name = "psvae"
    semi_supervised = True
    sphere = True  # S^d in R^(d+1), as the S-VAE
    compare_to_baseline = True  # an alternative to the Gaussian: the summary gives its gap to the N-VAE
    label, color, marker, linestyle = "PS-VAE", "#228833", "P", (0, (5, 1))

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], **shared):
        super().__init__(input_dim, latent_dim, hidden, **shared)
        # the S-VAE's head: direction (code_dim outputs) and concentration (the last one)
        self.head = nn.Linear(self.hidden[-1], self.code_dim + 1)

    def posterior(self, x: torch.Tensor) -> Distribution:
        # the S-VAE's transform: normalised direction, softplus(.) + 1 concentration
        loc, concentration = direction_and_concentration(self.head(self.body(x)))
        # no validation of network outputs, as for the other families
        return PowerSpherical(loc, concentration, validate_args=False)

    def prior(self) -> Distribution:
        p = self.decoder[-1].bias
        return HypersphericalUniform(self.code_dim, device=p.device, dtype=p.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # the mean direction (clustering and k-NN compare directions), as the S-VAE
        return F.normalize(self.head(self.body(x))[..., :-1], dim=-1)
