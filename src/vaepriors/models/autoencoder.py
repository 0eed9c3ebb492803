"""AE: a deterministic autoencoder whose latent density is estimated afterwards.

After training, a full-covariance GaussianMixture is fitted on the training codes (Ghosh et al.
2019 fit one with 10 components); its number of components is chosen by validation
log-likelihood. With that ex-post density as p(z) and the proposal q(z|x) = N(enc(x), s^2 I)
(s chosen on validation by the evaluation), importance sampling gives a stochastic lower bound on
the log-likelihood of the AE-plus-GMM model, on the same axis as the VAEs.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from ..distributions.mixture import full_gaussian_mixture
from .base import LatentVariableModel

log = logging.getLogger(__name__)

# The AE proposal scale is chosen on this many validation points with this many samples: a
# ranking of a handful of candidates, not a reported number, so it need not cost a full evaluation.
AE_SCALE_POINTS = 1000
AE_SCALE_SAMPLES = 100

AE_BOUND_NOTE = (
    "AE log-likelihood: importance sampling with the proposal N(enc(x), s^2 I) (s chosen on the "
    "validation split) and the ex-post GMM as p(z). Its expectation is a lower bound on the "
    "log-likelihood of the AE-plus-GMM generative model, so it is on the same axis as the VAE numbers."
)


class AE(LatentVariableModel):
    name = "ae"
    settings = {"ae_density_components": [1, 5, 10, 20]}
    evaluate_settings = ("ae_scale_grid",)
    has_kl = False
    ex_post_density = True
    label, color, marker, linestyle = "AE + ex-post GMM", "#DDAA33", "D", ":"
    prior_contour_label = "ex-post GMM components, 2σ (× = means)"
    loglik_note = ("The AE number is an importance-sampled lower bound on the log-likelihood of the "
                   "AE-plus-ex-post-GMM model (proposal N(enc(x), s²I), s chosen on validation).")

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int], density_components: int = 1,
                 **shared):
        super().__init__(input_dim, latent_dim, hidden, **shared)
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
        rec = self.reconstruction(self.decode(self.embed(x)), x).mean(-1)
        zero = torch.zeros_like(rec)
        # No KL: "elbo" is minus the reconstruction error, which early stopping tracks.
        return {"loss": rec, "elbo": -rec, "rec": rec, "kl": zero}

    def after_training(self, x_train: torch.Tensor, xb_val: torch.Tensor, seed: int,
                       model_cfg: dict) -> dict:
        """The ex-post density, fitted on the codes of one seeded observation (binarisation) of the
        training set (the model was trained on such draws)."""
        xb_train = self.likelihood.observe(x_train, torch.Generator().manual_seed(seed))
        scores = self.fit_density(self.embed_all(xb_train), self.embed_all(xb_val),
                                  self.setting(model_cfg, "ae_density_components"), seed)
        log.info("AE ex-post GMM: %d components (validation log-density %s)",
                 self.density_components, scores)
        return {"ae_density": {"components": self.density_components,
                               "validation_log_density": {str(k): v for k, v in scores.items()}}}

    def prepare_evaluation(self, x_val: torch.Tensor, cfg: dict, seed: int, kernel: str) -> dict:
        """The proposal scale s, chosen on validation, before the test log-likelihood uses it."""
        from ..evaluation.loglik import choose_ae_proposal_scale

        scale, scores = choose_ae_proposal_scale(
            self, x_val[:AE_SCALE_POINTS], cfg["ae_scale_grid"],
            min(cfg["importance_samples"], AE_SCALE_SAMPLES), cfg["chunk_elements"],
            generator=torch.Generator().manual_seed(seed), kernel=kernel)
        log.info("AE proposal scale %.3g (validation scores %s)", scale, scores)
        return {"ae_proposal": {"scale": scale, "validation_loglik": {str(k): v for k, v in scores.items()},
                                "note": AE_BOUND_NOTE}}

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
