"""S-VAE (Davidson et al. 2018): von Mises-Fisher posterior, uniform prior on the sphere S^d in R^(d+1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from ..distributions import HypersphericalUniform, VonMisesFisher
from .base import LatentVariableModel


class SVAE(LatentVariableModel):
    name = "svae"

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int]):
        super().__init__(input_dim, latent_dim, hidden)
        self.loc_head = nn.Linear(self.hidden[-1], self.code_dim)
        self.concentration_head = nn.Linear(self.hidden[-1], 1)

    def posterior(self, x: torch.Tensor) -> Distribution:
        h = self.body(x)
        loc = F.normalize(self.loc_head(h), dim=-1)
        # +1 keeps kappa away from 0, where the Bessel terms of the KL gradient are steepest
        # (Davidson et al. 2018).
        concentration = F.softplus(self.concentration_head(h)).squeeze(-1) + 1.0
        # No constraint validation of network outputs (as for the Gaussian posteriors): the
        # trainer stops on any non-finite loss term.
        return VonMisesFisher(loc, concentration, validate_args=False)

    def prior(self) -> Distribution:
        p = self.decoder[-1].bias
        return HypersphericalUniform(self.code_dim, device=p.device, dtype=p.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # The mean direction, not the shrunken mean A(kappa) mu: clustering and k-NN compare directions.
        return F.normalize(self.loc_head(self.body(x)), dim=-1)
