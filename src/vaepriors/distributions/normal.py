"""The factorised posteriors: Independent(Normal) and Independent(Laplace) that also draw in noise
groups (vaepriors.distributions.noise)."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Laplace, Normal

from . import noise


class DiagonalNormal(Independent):
    """N(loc, diag(scale^2)) over the last dimension; torch's Independent(Normal) in every respect
    (its registered KLs apply), except that rsample honours vaepriors.distributions.noise groups."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        super().__init__(Normal(loc, scale, validate_args=validate_args), 1, validate_args=validate_args)

    def rsample(self, sample_shape=()):
        if not noise.active() or len(sample_shape):
            return super().rsample(torch.Size(sample_shape))
        # Normal.rsample's standard-normal draw, one group (the leading batch index) at a time
        base = self.base_dist
        shape = base.loc.shape
        eps = noise.grouped(lambda rows: torch.empty(shape[1:], dtype=base.loc.dtype,
                                                     device=base.loc.device).normal_(), shape[0])
        return base.loc + torch.stack(eps) * base.scale


class DiagonalLaplace(Independent):
    """Laplace(loc, scale) factorised over the last dimension; torch's Independent(Laplace) in every
    respect (its registered KL applies), except that rsample honours noise groups."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        super().__init__(Laplace(loc, scale, validate_args=validate_args), 1, validate_args=validate_args)

    def rsample(self, sample_shape=()):
        if not noise.active() or len(sample_shape):
            return super().rsample(torch.Size(sample_shape))
        # Laplace.rsample's inverse CDF of a uniform on (eps - 1, 1), one group at a time
        base = self.base_dist
        shape, eps = base.loc.shape, torch.finfo(base.loc.dtype).eps
        u = torch.stack(noise.grouped(lambda rows: base.loc.new(shape[1:]).uniform_(eps - 1, 1), shape[0]))
        return base.loc - base.scale * u.sign() * torch.log1p(-u.abs())
