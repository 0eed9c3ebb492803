"""S-VAE (Davidson et al. 2018): von Mises-Fisher posterior, uniform prior on the sphere S^d in R^(d+1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from .. import kernels
from ..distributions import HypersphericalUniform, VonMisesFisher
from ..distributions.vmf import uniform_kl
from .base import LatentVariableModel

# torch's softplus returns x itself above this (its default threshold); the compiled head does too
_SOFTPLUS_THRESHOLD = 20.0


def direction_and_concentration(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loc, kappa) = (normalize(raw[..., :-1]), softplus(raw[..., -1]) + 1) from unconstrained
    outputs raw (..., m + 1): the S-VAE's posterior head (Davidson et al. 2018; the +1 keeps kappa
    away from 0, where the Bessel terms of the KL gradient are steepest), also the PS-VAE's."""
    compiled = kernels.vmf_math(raw)
    if compiled is not None:
        # rows as (N, m + 1); no reshape node in the graph when they already are (the training step)
        flat = raw.dim() == 2
        loc, kappa = compiled.head(raw if flat else raw.reshape(-1, raw.shape[-1]), _SOFTPLUS_THRESHOLD)
        return (loc, kappa) if flat else (loc.reshape(raw.shape[:-1] + loc.shape[-1:]),
                                          kappa.reshape(raw.shape[:-1]))
    loc = F.normalize(raw[..., :-1], dim=-1)
    return loc, F.softplus(raw[..., -1], threshold=_SOFTPLUS_THRESHOLD) + 1.0


class SVAE(LatentVariableModel):
    name = "svae"
    semi_supervised = True
    sphere = True  # S^d in R^(d+1), as Davidson et al. (2018)
    compare_to_baseline = True
    label, color, marker, linestyle = "S-VAE", "#004488", "s", "--"
    settings = {"vmf_gradient": "implicit"}
    settings_schema = {"vmf_gradient": {
        "type": "string", "enum": ["implicit", "accepted"],
        "description": "kappa gradient: implicit (exact) or through the accepted proposal only (the authors' code)"}}

    @classmethod
    def from_config(cls, latent_dim: int, input_dim: int, n_classes: int, model_cfg: dict) -> SVAE:
        return cls(input_dim=input_dim, latent_dim=latent_dim, hidden=model_cfg["hidden"],
                   gradient=cls.setting(model_cfg, "vmf_gradient"), **cls.shared_kwargs(model_cfg))

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], gradient: str = "implicit",
                 **shared):
        super().__init__(input_dim, latent_dim, hidden, **shared)
        self.gradient = gradient
        # One layer gives the direction (code_dim outputs) and the concentration (the last one),
        # as the N-VAE's one head gives mean and log-variance: one GEMM and one parameter pair
        # fewer per step than two heads, with the same initialisation (same fan-in).
        self.head = nn.Linear(self.hidden[-1], self.code_dim + 1)

    def init_kwargs(self) -> dict:
        return {**super().init_kwargs(), "gradient": self.gradient}

    def posterior(self, x: torch.Tensor) -> Distribution:
        return vmf_posterior(self.head(self.body(x)), self.gradient)

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


def vmf_posterior(out: torch.Tensor, gradient: str = "implicit") -> VonMisesFisher:
    """q(z|x) from the head's output (..., code_dim + 1): direction, then concentration."""
    loc, concentration = direction_and_concentration(out)
    # No constraint validation of network outputs (as for the Gaussian posteriors): the trainer
    # stops on any non-finite loss term.
    return VonMisesFisher(loc, concentration, validate_args=False, gradient=gradient)
