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
from torch import nn
from torch.distributions import Distribution, Independent, Normal

from ..distributions.mixture import full_gaussian_mixture
from .base import LatentVariableModel

log = logging.getLogger(__name__)

AE_BOUND_NOTE = (
    "AE log-likelihood: importance sampling with the proposal N(enc(x), s^2 I) (s chosen on the "
    "validation split) and the ex-post GMM as p(z). Its expectation is a lower bound on the "
    "log-likelihood of the AE-plus-GMM generative model, so it is on the same axis as the VAE numbers."
)


def choose_gmm(train: np.ndarray, val: np.ndarray, candidates: list[int], seed: int):
    """A full-covariance GMM per candidate K fitted on ``train``, the best on ``val`` kept.
    Returns (that GaussianMixture, {K: mean validation log-density})."""
    # imported here: the registry (the Snakefile, every script) imports this module, and
    # scikit-learn's import costs seconds
    from sklearn.mixture import GaussianMixture

    scores: dict[int, float] = {}
    best = None
    for k in candidates:
        if k > len(train):
            continue
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-5).fit(train)
        scores[k] = float(gmm.score(val))
        if best is None or scores[k] > scores[best.n_components]:
            best = gmm
    return best, scores


class AE(LatentVariableModel):
    name = "ae"
    settings = {"ae_density_components": [1, 5, 10, 20]}
    settings_schema = {"ae_density_components": {
        "type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1},
        "description": "ex-post GMM: the K tried, chosen by validation log-likelihood"}}
    evaluate_settings = ("ae_scale_grid",)
    has_kl = False
    ex_post_density = True
    tuned_proposal = True
    bound_note = AE_BOUND_NOTE
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

    @torch.no_grad()
    def fit_density(
        self, codes_train: np.ndarray, codes_val: np.ndarray, candidates: list[int], seed: int
    ) -> dict[int, float]:
        """The ex-post density: choose_gmm on the codes. Returns its validation scores."""
        gmm, scores = choose_gmm(codes_train, codes_val, candidates, seed)
        k = gmm.n_components
        ref = self.density_means
        as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=ref.dtype, device=ref.device)
        self.density_components = k
        self.density_weights = as_t(gmm.weights_)
        self.density_means = as_t(gmm.means_)
        self.density_scale_tril = torch.linalg.cholesky(as_t(gmm.covariances_))
        return scores
