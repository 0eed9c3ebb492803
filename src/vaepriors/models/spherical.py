"""S-VAE (Davidson et al. 2018): von Mises-Fisher posterior, uniform prior on the sphere S^d in R^(d+1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from ..distributions import HypersphericalUniform, VonMisesFisher
from ..distributions.vmf import direction_and_concentration, uniform_kl
from .base import LatentVariableModel


class SVAE(LatentVariableModel):
    name = "svae"
    sphere = True  # S^d in R^(d+1), as Davidson et al. (2018)
    compare_to_baseline = True
    label, color, marker, linestyle = "S-VAE", "#004488", "s", "--"

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int]):
        super().__init__(input_dim, latent_dim, hidden)
        # One layer gives the direction (code_dim outputs) and the concentration (the last one),
        # as the N-VAE's one head gives mean and log-variance: one GEMM and one parameter pair
        # fewer per step than two heads, with the same initialisation (same fan-in).
        self.head = nn.Linear(self.hidden[-1], self.code_dim + 1)

    def posterior(self, x: torch.Tensor) -> Distribution:
        return vmf_posterior(self.head(self.body(x)))

    def prior(self) -> Distribution:
        p = self.decoder[-1].bias
        return HypersphericalUniform(self.code_dim, device=p.device, dtype=p.dtype)

    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        # the registered KL to the uniform prior, without building the prior every step
        return uniform_kl(q)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # The mean direction, not the shrunken mean A(kappa) mu: clustering and k-NN compare directions.
        return F.normalize(self.head(self.body(x))[..., :-1], dim=-1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the two heads were merged hold loc_head and
        # concentration_head: stack them into the one layer they are the rows of.
        old = [f"{prefix}{name}_head.{p}" for name in ("loc", "concentration") for p in ("weight", "bias")]
        if all(key in state_dict for key in old):
            loc_w, loc_b, conc_w, conc_b = (state_dict.pop(key) for key in old)
            state_dict[f"{prefix}head.weight"] = torch.cat([loc_w, conc_w])
            state_dict[f"{prefix}head.bias"] = torch.cat([loc_b, conc_b])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def vmf_posterior(out: torch.Tensor) -> VonMisesFisher:
    """q(z|x) from the head's output (..., code_dim + 1): direction, then concentration."""
    loc, concentration = direction_and_concentration(out)
    # No constraint validation of network outputs (as for the Gaussian posteriors): the trainer
    # stops on any non-finite loss term.
    return VonMisesFisher(loc, concentration, validate_args=False)
