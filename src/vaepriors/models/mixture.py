"""GMM-VAE: diagonal Gaussian posterior, learned Gaussian-mixture prior, used for clustering
(Dilokthanakul et al. 2016; Jiang et al. 2017, VaDE).

Collapse (every point in one component, ~11% accuracy) is the known failure of training such a
prior from a random start. As VaDE does, the trainer first pre-trains the encoder mean and decoder
as a plain autoencoder for a few epochs and then initialises the mixture from a GaussianMixture fit
on the codes (`initialise_prior`), so every component starts on a region that holds data.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution

from ..distributions.mixture import component_posterior, diagonal_gaussian_mixture
from .base import LatentVariableModel
from .gaussian import LOGVAR_MAX, LOGVAR_MIN, GaussianPosteriorMixin


class GMMVAE(GaussianPosteriorMixin, LatentVariableModel):
    name = "gmmvae"
    settings = {"gmm_components": 0, "gmm_pretrain_epochs": 10}
    settings_schema = {
        "gmm_components": {"type": "integer", "minimum": 0, "description": "prior components K; 0 = number of classes"},
        "gmm_pretrain_epochs": {"type": "integer", "minimum": 0,
                                "description": "AE pre-training epochs before the mixture is initialised"}}
    analytic_kl = False  # KL(q || mixture) has no closed form: one-sample Monte Carlo, exact log-densities
    assigns_clusters = True  # its own mixture: the component each image most probably came from
    label, color, marker, linestyle = "GMM-VAE", "#BB5566", "^", "-."
    prior_contour_label = "prior components, 2σ (× = means)"

    @classmethod
    def from_config(cls, latent_dim: int, input_dim: int, n_classes: int, model_cfg: dict) -> GMMVAE:
        model = cls(input_dim=input_dim, latent_dim=latent_dim, hidden=model_cfg["hidden"],
                    n_components=cls.setting(model_cfg, "gmm_components") or n_classes,
                    **cls.shared_kwargs(model_cfg))
        model.pretrain_epochs = int(cls.setting(model_cfg, "gmm_pretrain_epochs"))
        return model

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], n_components: int, **shared):
        super().__init__(input_dim, latent_dim, hidden, **shared)
        self._build_gaussian_head()
        self.n_components = int(n_components)
        k, d = self.n_components, self.code_dim
        self.prior_logits = nn.Parameter(torch.zeros(k))
        self.prior_means = nn.Parameter(torch.randn(k, d))
        self.prior_logvars = nn.Parameter(torch.zeros(k, d))
        self.pretrain_epochs = 0  # training only (model.gmm_pretrain_epochs): not in checkpoints

    def init_kwargs(self) -> dict:
        return {**super().init_kwargs(), "n_components": self.n_components}

    def prior(self) -> Distribution:
        logvars = self.prior_logvars.clamp(LOGVAR_MIN, LOGVAR_MAX)
        return diagonal_gaussian_mixture(self.prior_logits, self.prior_means, logvars)

    def pretrain_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Autoencoder loss on the posterior mean: the pre-training objective."""
        return self.reconstruction(self.decode(self.embed(x)), x).mean()

    @torch.no_grad()
    def initialise_prior(self, codes: np.ndarray, seed: int) -> None:
        from sklearn.mixture import GaussianMixture  # here: seconds to import (see autoencoder.py)

        gmm = GaussianMixture(
            self.n_components, covariance_type="diag", random_state=seed, reg_covar=1e-4
        ).fit(codes)
        dev = self.prior_means
        self.prior_logits.copy_(torch.as_tensor(np.log(gmm.weights_), dtype=dev.dtype))
        self.prior_means.copy_(torch.as_tensor(gmm.means_, dtype=dev.dtype))
        self.prior_logvars.copy_(torch.as_tensor(np.log(gmm.covariances_), dtype=dev.dtype))

    def before_training(self, setup) -> None:
        """VaDE's start: AE pre-training on posterior means, then the mixture from a GMM fitted on
        the codes of one more fresh binarisation (both drawn from the seed's data generator)."""
        setup.pretrain(self.pretrain_loss, self.pretrain_epochs)
        xb, _ = setup.epoch_batches()
        self.initialise_prior(self.embed_all(xb), seed=setup.seed)

    @torch.no_grad()
    def cluster(self, x: torch.Tensor, n_samples: int = 10) -> torch.Tensor:
        """argmax_k of p(k | z) averaged over posterior samples z ~ q(z|x)."""
        z = self.posterior(x).sample((n_samples,))
        return component_posterior(self.prior(), z).mean(0).argmax(-1)
