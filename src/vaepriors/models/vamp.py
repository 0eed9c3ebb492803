"""VampPrior VAE (Tomczak & Welling 2018): diagonal Gaussian posterior; the prior is the mixture of
the posteriors of K learned pseudo-inputs u_k, p(z) = (1/K) sum_k q(z | u_k).

The prior is rebuilt from the current encoder whenever it is asked for, so the encoder and the
pseudo-inputs both learn through it. Its log-density is exact (a log-sum-exp over the components);
the KL to it has no closed form and is the one-sample Monte Carlo estimate of the base class.
The pseudo-inputs are points of the data space, started from training examples: for images
in [0, 1] u_k = sigmoid(a_k), for continuous data u_k = a_k (the likelihood's to_input).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions.mixture import DiagonalGaussianMixture
from .base import LatentVariableModel
from .gaussian import GaussianPosteriorMixin

# Training images start the pseudo-inputs clamped to [eps, 1 - eps]: a sigmoid reaches 0 and 1
# only at infinite logits, and Adam moves logits of +-2.9 in a few hundred steps if it must.
PSEUDO_INPUT_EPS = 0.05


class VampVAE(GaussianPosteriorMixin, LatentVariableModel):
    name = "vamp"
    settings = {"vamp_components": 500}
    settings_schema = {"vamp_components": {"type": "integer", "minimum": 1, "description": "pseudo-inputs K"}}
    analytic_kl = False  # KL(q || mixture) has no closed form: one-sample Monte Carlo, exact log-densities
    compare_to_baseline = True  # an alternative to the Gaussian: the summary gives its gap to the N-VAE
    label, color, marker, linestyle = "VampPrior", "#66CCEE", "*", (0, (1, 1))
    prior_contour_label = "prior components q(z|u_k), 2σ (× = pseudo-input codes)"
    loglik_note = ("Published anchor for the VampPrior: Tomczak & Welling (2018) report about −85.6 nats "
                   "on dynamically binarised MNIST with a larger gated network, 40 latent dimensions and "
                   "5000 importance samples; the VampPrior here uses the one network all families share.")

    @classmethod
    def from_config(cls, latent_dim: int, input_dim: int, n_classes: int, model_cfg: dict) -> VampVAE:
        return cls(input_dim=input_dim, latent_dim=latent_dim, hidden=model_cfg["hidden"],
                   n_pseudo_inputs=cls.setting(model_cfg, "vamp_components"),
                   **cls.shared_kwargs(model_cfg))

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], n_pseudo_inputs: int,
                 **shared):
        super().__init__(input_dim, latent_dim, hidden, **shared)
        self._build_gaussian_head()
        self.n_pseudo_inputs = int(n_pseudo_inputs)
        # grey images 0.5 until before_training puts training images there (no random draw, so the
        # networks start with the same weights as the N-VAE of the same seed)
        self.pseudo_logits = nn.Parameter(torch.zeros(self.n_pseudo_inputs, self.input_dim))

    def init_kwargs(self) -> dict:
        return {**super().init_kwargs(), "n_pseudo_inputs": self.n_pseudo_inputs}

    def pseudo_inputs(self) -> torch.Tensor:
        return self.likelihood.to_input(self.pseudo_logits)

    def prior(self) -> Distribution:
        components = self.posterior(self.pseudo_inputs()).base_dist
        logits = torch.zeros_like(components.loc[..., 0])  # equal weights 1/K
        return DiagonalGaussianMixture(logits, components.loc, components.scale)

    @torch.no_grad()
    def initialise_pseudo_inputs(self, x_train: torch.Tensor, seed: int) -> None:
        """u_k = K training images (grey levels), drawn without replacement where there are enough."""
        g = torch.Generator().manual_seed(seed)
        n, k = len(x_train), self.n_pseudo_inputs
        index = torch.randperm(n, generator=g)[:k] if k <= n else torch.randint(n, (k,), generator=g)
        self.pseudo_logits.copy_(self.likelihood.from_input(x_train[index], PSEUDO_INPUT_EPS).to(self.pseudo_logits))

    def before_training(self, setup) -> None:
        # its own generator: the seed's data generator (binarisations, batch order) is untouched
        self.initialise_pseudo_inputs(setup.data.x_train, setup.seed)
