"""AE: a deterministic autoencoder whose latent density is estimated afterwards.

After training, a full-covariance GaussianMixture is fitted on the training codes (Ghosh et al.
2019 fit one with 10 components); its number of components is chosen by validation
log-likelihood. With that ex-post density as p(z) and the proposal q(z|x) = N(enc(x), s^2 I)
(s chosen on validation by the evaluation), importance sampling gives a stochastic lower bound on
the log-likelihood of the AE-plus-GMM model, on the same axis as the VAEs.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from ..distributions.mixture import full_gaussian_mixture
from .base import LatentVariableModel


class AE(LatentVariableModel):
    name = "ae"

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], density_components: int = 1):
        super().__init__(input_dim, latent_dim, hidden)
        self.head = nn.Linear(self.hidden[-1], self.code_dim)
        k, d = int(density_components), self.code_dim
        self.density_components = k
        # Ex-post density and evaluation proposal: buffers, so they travel in the checkpoint.
        self.register_buffer("density_weights", torch.full((k,), 1.0 / k))
        self.register_buffer("density_means", torch.zeros(k, d))
        self.register_buffer("density_scale_tril", torch.eye(d).expand(k, d, d).clone())
        self.register_buffer("proposal_scale", torch.tensor(0.1))

    def init_kwargs(self) -> dict:
        return {**super().init_kwargs(), "density_components": self.density_components}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def posterior(self, x: torch.Tensor) -> Distribution:
        code = self.embed(x)
        return Independent(Normal(code, self.proposal_scale.expand_as(code)), 1)

    def prior(self) -> Distribution:
        return full_gaussian_mixture(self.density_weights, self.density_means, self.density_scale_tril)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        rec = self.reconstruction(self.decode(self.embed(x)), x).mean()
        zero = torch.zeros_like(rec)
        # No KL: "elbo" is minus the reconstruction error, which early stopping tracks.
        return {"loss": rec, "elbo": -rec, "rec": rec, "kl": zero}

    @torch.no_grad()
    def fit_density(
        self, codes_train: np.ndarray, codes_val: np.ndarray, candidates: list[int], seed: int
    ) -> dict[int, float]:
        """Fit a full-covariance GMM per candidate K on training codes; keep the best on validation.
        Returns the mean validation log-density of each candidate."""
        scores: dict[int, float] = {}
        best = None
        for k in candidates:
            if k > len(codes_train):
                continue
            gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-5)
            gmm.fit(codes_train)
            scores[k] = float(gmm.score(codes_val))
            if best is None or scores[k] > scores[best[0]]:
                best = (k, gmm)
        k, gmm = best
        ref = self.density_means
        as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=ref.dtype, device=ref.device)
        self.density_components = k
        self.density_weights = as_t(gmm.weights_)
        self.density_means = as_t(gmm.means_)
        self.density_scale_tril = torch.linalg.cholesky(as_t(gmm.covariances_))
        return scores
