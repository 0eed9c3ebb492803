"""Gaussian-mixture priors as torch.distributions.MixtureSameFamily; DiagonalGaussianMixture only
replaces its log_prob by one that scales to many components (the VampPrior's)."""

from __future__ import annotations

import math

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


class DiagonalGaussianMixture(MixtureSameFamily):
    """sum_k softmax(logits)_k N(means_k, diag scales_k^2), event_shape (d,); means and scales of
    shape (*batch, K, d) (a batch dimension: seeds stacked in training).

    MixtureSameFamily.log_prob broadcasts z against every component, a (..., K, d) tensor: for a
    VampPrior (K = 500) on the evaluation's sample blocks, gigabytes. Here the quadratic form is
    expanded, sum_j (z_j - m_kj)^2 / s_kj^2 = z^2 . p_k - 2 z . (p_k m_k) + m_k^2 . p_k with
    p_k = 1 / s_k^2, two matrix products giving (rows, K) blocks, in float64 (the expanded terms
    are large when a scale is small; float64 keeps their difference exact to ~1e-7 nats).
    """

    # rows of z per block: (rows, K) float64 values stay at ~32 MB whatever K
    BLOCK_ELEMENTS = 2**22

    def __init__(self, logits: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, validate_args=None):
        if means.dim() < 2:
            raise ValueError("DiagonalGaussianMixture takes means and scales of shape (*batch, K, d)")
        components = Independent(Normal(means, scales, validate_args=validate_args), 1)
        super().__init__(Categorical(logits=logits, validate_args=validate_args), components,
                         validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        normal = self.component_distribution.base_dist
        k, d = normal.loc.shape[-2:]
        groups = self.batch_shape.numel()
        means, scales = normal.loc.double().reshape(groups, k, d), normal.scale.double().reshape(groups, k, d)
        logits = self.mixture_distribution.logits.double().reshape(groups, k)
        # value: (*sample, *batch, d); each batch member's values against its own components
        z = value.double().reshape(-1, groups, d)
        rows = max(1, self.BLOCK_ELEMENTS // k)
        out = []
        for g in range(groups):
            precision = scales[g].pow(-2)
            shift = precision * means[g]
            const = (torch.log_softmax(logits[g], -1) - 0.5 * (means[g] * shift).sum(-1)
                     - scales[g].log().sum(-1) - 0.5 * d * math.log(2 * math.pi))
            out.append(torch.cat([torch.logsumexp(const + block @ shift.T - 0.5 * (block * block) @ precision.T, -1)
                                  for block in z[:, g].split(rows)]))
        return torch.stack(out, -1).reshape(value.shape[:-1]).to(value.dtype)
