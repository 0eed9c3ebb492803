"""Power Spherical distribution on S^(m-1) in R^m (De Cao & Aziz 2020).

Density p(z) = (1 + mu^T z)^kappa / N(kappa), N = 2^(a+b) pi^b Gamma(a) / Gamma(a+b) with
a = (m-1)/2 + kappa and b = (m-1)/2. Its cosine t = mu^T z is 2B - 1 with B ~ Beta(a, b):
integrating over the sphere's circles of constant t, p(t) is proportional to
(1+t)^kappa (1-t^2)^((m-3)/2), i.e. ((1+t)/2)^(a-1) ((1-t)/2)^(b-1). A draw is therefore exact
and without rejection: t from the Beta, a uniform tangent direction v orthogonal to e1, and the
Householder map of sphere.py carrying (t, sqrt(1-t^2) v) from around e1 to around mu. No Bessel
function appears anywhere, so nothing overflows or underflows at large m or kappa.

B is formed from two reparameterised Gamma draws, B = G_a / (G_a + G_b), because then
1 - B = G_b / (G_a + G_b) and sqrt(1 - t^2) = 2 sqrt(G_a G_b) / (G_a + G_b) come without the
cancellation of 1 - B when B rounds to 1 (large kappa in float32). The gradient in kappa is
torch's implicit one of G_a (Figurnov et al. 2018), in mu the path through the reflection.

The normaliser, the entropy and the KL to the uniform distribution are formed in float64: at large
kappa they are small differences of log-gamma values of order kappa log kappa.
"""

import math
from typing import ClassVar

import torch
from torch.distributions import Distribution, Gamma, constraints
from torch.distributions.kl import register_kl

from . import noise
from .sphere import HypersphericalUniform, householder_vector, log_sphere_area, reflect, sphere, unit_rows

__all__ = ["PowerSpherical"]


class PowerSpherical(Distribution):
    """PowerSpherical(loc, concentration) on S^(m-1): density proportional to (1 + loc^T z)^kappa.

    loc: (..., m) unit vectors; concentration: (...) non-negative (0 is the uniform distribution),
    broadcast against loc[..., 0]. m is the ambient dimension, as in the authors' code.
    """

    arg_constraints: ClassVar[dict] = {"loc": sphere, "concentration": constraints.nonnegative}
    support = sphere
    has_rsample = True

    def __init__(self, loc, concentration, validate_args=None):
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        self.loc = loc.expand(batch_shape + loc.shape[-1:])
        self.concentration = concentration.expand(batch_shape)
        self._m = loc.shape[-1]
        if self._m < 2:
            raise ValueError("PowerSpherical needs an ambient dimension m >= 2")
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(PowerSpherical, _instance)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        new._m = self._m
        super(PowerSpherical, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def _b(self):
        return 0.5 * (self._m - 1)

    @property
    def mean(self):
        # E[t] = 2 E[B] - 1 = (a - b) / (a + b) = kappa / (kappa + m - 1)
        kappa = self.concentration
        return (kappa / (kappa + (self._m - 1))).unsqueeze(-1) * self.loc

    def _log_normalizer(self):
        """-log N(kappa) in float64 (differentiable in kappa)."""
        kappa = self.concentration.to(torch.float64)
        a, b = kappa + self._b, self._b
        return -((a + b) * math.log(2) + b * math.log(math.pi) + torch.lgamma(a) - torch.lgamma(a + b))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        # xlogy: kappa = 0 at z = -mu is 0 log 0 = 0 (the uniform density), not nan
        log_kernel = torch.xlogy(self.concentration, 1 + (self.loc * value).sum(-1))
        return (self._log_normalizer() + log_kernel).to(log_kernel.dtype)

    def _entropy64(self):
        # H = log N - kappa E[log(1 + t)], E[log(1 + t)] = log 2 + psi(a) - psi(a + b)
        kappa = self.concentration.to(torch.float64)
        a, b = kappa + self._b, self._b
        mean_log_kernel = math.log(2) + torch.digamma(a) - torch.digamma(a + b)
        return -self._log_normalizer() - kappa * mean_log_kernel

    def entropy(self):
        return self._entropy64().to(self.loc.dtype)

    def rsample(self, sample_shape=()):
        sample_shape = torch.Size(sample_shape)
        if noise.active() and self.batch_shape and not sample_shape:
            # stacked seeds: each group (leading batch index) draws in its own stream
            z0 = torch.cat(noise.grouped(lambda rows: self._around_e1(self.concentration[rows], ()),
                                         self.batch_shape[0]))
        else:
            z0 = self._around_e1(self.concentration, sample_shape)
        return reflect(*householder_vector(self.loc), z0)[0]

    def _around_e1(self, kappa, sample_shape):
        """Draws of the distribution with mean direction e1: (t, sqrt(1 - t^2) v)."""
        ones = torch.ones_like(kappa)
        g_a = Gamma(kappa + self._b, ones, validate_args=False).rsample(sample_shape)
        with torch.no_grad():  # G_b does not depend on the parameters
            g_b = Gamma(torch.full_like(ones, self._b), ones, validate_args=False).sample(sample_shape)
            tangent = unit_rows(torch.randn(sample_shape + kappa.shape + (self._m - 1,),
                                            dtype=self.loc.dtype, device=self.loc.device))
        total = g_a + g_b
        t = (g_a - g_b) / total
        # sqrt(G_a) sqrt(G_b), not sqrt(G_a G_b): the product can underflow to 0 (a nan gradient)
        radius = 2 * torch.sqrt(g_a) * torch.sqrt(g_b) / total
        return torch.cat([t.unsqueeze(-1), radius.unsqueeze(-1) * tangent], dim=-1)


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(p, q):
    """KL(p || uniform) = log |S^(m-1)| - H(p)."""
    if p.event_shape != q.event_shape:
        raise ValueError("Power Spherical and uniform live on spheres of different dimension")
    return (log_sphere_area(p._m) - p._entropy64()).to(p.loc.dtype)
