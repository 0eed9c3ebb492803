"""Gaussian-mixture priors as torch.distributions.MixtureSameFamily (no class of our own needed)."""

from __future__ import annotations

import torch
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)


def diagonal_gaussian_mixture(
    logits: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor
) -> MixtureSameFamily:
    """sum_k softmax(logits)_k N(means_k, diag exp(logvars_k)); event_shape (d,)."""
    components = Independent(Normal(means, torch.exp(0.5 * logvars)), 1)
    return MixtureSameFamily(Categorical(logits=logits), components)


def full_gaussian_mixture(
    weights: torch.Tensor, means: torch.Tensor, scale_tril: torch.Tensor
) -> MixtureSameFamily:
    """A full-covariance mixture, e.g. scikit-learn's GaussianMixture moved into torch."""
    return MixtureSameFamily(
        Categorical(probs=weights), MultivariateNormal(means, scale_tril=scale_tril)
    )


def component_posterior(mixture: MixtureSameFamily, z: torch.Tensor) -> torch.Tensor:
    """p(k | z) for every component: shape z.shape[:-1] + (K,)."""
    log_joint = mixture.component_distribution.log_prob(z.unsqueeze(-2)) + torch.log_softmax(
        mixture.mixture_distribution.logits, dim=-1
    )
    return torch.softmax(log_joint, dim=-1)
