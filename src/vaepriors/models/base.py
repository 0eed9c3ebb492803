"""What every latent family shares: the networks, the Bernoulli likelihood and the ELBO."""

from __future__ import annotations

import abc
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, kl_divergence

from .. import code_dim as _code_dim
from .networks import decoder, encoder_body, init_output_bias


class LatentVariableModel(nn.Module, metaclass=abc.ABCMeta):
    """Encoder body + family-specific posterior head, decoder, prior. See docs/design.md."""

    name: str = ""
    # Families whose KL has no closed form estimate it from the posterior sample (GMM-VAE).
    analytic_kl: bool = True

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int]):
        super().__init__()
        self.input_dim = int(input_dim)
        self.latent_dim = int(latent_dim)
        self.hidden = [int(h) for h in hidden]
        self.code_dim = _code_dim(self.name, self.latent_dim)
        self.body = encoder_body(self.input_dim, self.hidden)
        self.decoder = decoder(self.code_dim, self.hidden, self.input_dim)

    # Constructor arguments, stored in checkpoints so that load_model can rebuild the module.
    def init_kwargs(self) -> dict[str, Any]:
        return {"input_dim": self.input_dim, "latent_dim": self.latent_dim, "hidden": self.hidden}

    def init_output_bias(self, pixel_mean: torch.Tensor) -> None:
        init_output_bias(self.decoder, pixel_mean)

    @abc.abstractmethod
    def posterior(self, x: torch.Tensor) -> Distribution:
        """q(z|x): batch_shape (B,), event_shape (code_dim,)."""

    @abc.abstractmethod
    def prior(self) -> Distribution:
        """p(z): batch_shape (), event_shape (code_dim,)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x).mean

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruction(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats, summed over pixels (logits broadcast over sample dimensions)."""
        return F.binary_cross_entropy_with_logits(
            logits, x.expand_as(logits), reduction="none"
        ).sum(-1)

    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        if self.analytic_kl:
            return kl_divergence(q, self.prior())
        return q.log_prob(z) - self.prior().log_prob(z)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        q = self.posterior(x)
        z = q.rsample()
        rec = self.reconstruction(self.decode(z), x)
        kl = self.kl(q, z)
        return {
            "loss": (rec + beta * kl).mean(),
            "elbo": -(rec + kl).mean(),
            "rec": rec.mean(),
            "kl": kl.mean(),
        }

    def _zeros(self, *shape: int) -> torch.Tensor:
        p = self.decoder[-1].bias
        return torch.zeros(*shape, dtype=p.dtype, device=p.device)
