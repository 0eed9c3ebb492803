"""The factorised posteriors: Independent(Normal) and Independent(Laplace) that also draw in noise
groups (vaepriors.distributions.noise)."""

from __future__ import annotations

import torch
from torch.distributions import Independent, Laplace, Normal

from . import noise


class _Factorised(Independent):
    """base(loc, scale) over the last dimension; torch's Independent(base) in every respect (its
    registered KLs apply), except that rsample honours noise groups: the base's own standard draw
    (``_standard``), one group (the leading batch index) at a time, then placed (``_place``)."""

    base: type  # the torch distribution, set by each subclass

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args=None):
        super().__init__(self.base(loc, scale, validate_args=validate_args), 1, validate_args=validate_args)

    def rsample(self, sample_shape=()):
        if not noise.active() or len(sample_shape):
            return super().rsample(torch.Size(sample_shape))
        loc = self.base_dist.loc
        draws = noise.grouped(lambda rows: self._standard(loc.new_empty(loc.shape[1:])), loc.shape[0])
        return self._place(torch.stack(draws))


class DiagonalNormal(_Factorised):
    """N(loc, diag(scale^2)): Normal.rsample's standard-normal draw."""

    base = Normal

    def _standard(self, out):
        return out.normal_()

    def _place(self, eps):
        return self.base_dist.loc + eps * self.base_dist.scale


class DiagonalLaplace(_Factorised):
    """Laplace(loc, scale) per coordinate: Laplace.rsample's inverse CDF of a uniform on (eps - 1, 1)."""

    base = Laplace

    def _standard(self, out):
        return out.uniform_(torch.finfo(out.dtype).eps - 1, 1)

    def _place(self, u):
        return self.base_dist.loc - self.base_dist.scale * u.sign() * torch.log1p(-u.abs())
