"""What every distribution on the unit sphere S^(m-1) in R^m shares: the support constraint, its
area, the uniform distribution on it, and the Householder map that carries a draw around e1 onto
a mean direction (vMF and Power Spherical sampling both end with it)."""

import math
from functools import cache
from typing import ClassVar

import torch
from torch.distributions import Distribution, constraints

__all__ = ["HypersphericalUniform", "constant", "householder_vector", "log_sphere_area", "reflect",
           "sphere"]


class _Sphere(constraints.Constraint):
    """Unit vectors along the last dimension (tolerance suited to the dtype)."""

    event_dim = 1

    def check(self, value):
        tol = 10 * torch.finfo(value.dtype).eps ** 0.5
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() < tol


sphere = _Sphere()


def log_sphere_area(m):
    """log |S^(m-1)| = log(2 pi^(m/2) / Gamma(m/2))."""
    return math.log(2) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


@cache
def constant(value, dtype, device):
    """A 0-d tensor holding `value`, built once per dtype and device."""
    return torch.tensor(value, dtype=dtype, device=device)


@cache
def _unit_vector(m, dtype, device):
    """e1 in R^m."""
    e1 = torch.zeros(m, dtype=dtype, device=device)
    e1[0] = 1
    return e1


def unit_rows(x):
    """x divided by the norms of its rows (..., m). A row of zeros becomes e1, not 0/0: a normal
    draw is exactly 0 about once in 2e7 (tests/test_power_spherical.py), and on S^1 a tangent
    direction is a single such draw."""
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.where(norm > 0, x / norm, _unit_vector(x.shape[-1], x.dtype, x.device))


def reflect(s, u, uu, z0):
    """(Q z0, u^T z0 / u^T u) for Q of householder_vector; z0 (..., m) broadcasts against u."""
    proj = (u * z0).sum(-1, keepdim=True) / uu
    return s * torch.addcmul(z0, proj, u, value=-2), proj


def householder_vector(loc):
    """(s, u, u^T u) of an orthogonal map Q = s (I - 2 u u^T / u^T u) with Q e1 = loc (..., m).

    u = e1 - s loc with s = -sign(loc_1): then u^T u >= 2, so Q is smooth in loc everywhere (the
    textbook u = e1 - loc degenerates at loc = e1).  Any orthogonal Q with Q e1 = loc maps a
    distribution rotationally symmetric about e1 to the same one about loc, so switching s is
    harmless.
    """
    s = torch.where(
        loc[..., :1] > 0,
        constant(-1.0, loc.dtype, loc.device),
        constant(1.0, loc.dtype, loc.device),
    )
    u = _unit_vector(loc.shape[-1], loc.dtype, loc.device) - s * loc
    return s, u, (u * u).sum(-1, keepdim=True)


class HypersphericalUniform(Distribution):
    """Uniform distribution on S^(dim-1) in R^dim (dim is the ambient dimension)."""

    arg_constraints: ClassVar[dict] = {}
    support = sphere
    has_rsample = True

    def __init__(self, dim, device=None, dtype=None, validate_args=None):
        if dim < 2:
            raise ValueError("HypersphericalUniform needs an ambient dimension dim >= 2")
        self.dim = dim
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.dtype = torch.get_default_dtype() if dtype is None else dtype
        super().__init__(torch.Size(), torch.Size([dim]), validate_args=validate_args)

    def _log_area(self):
        return torch.tensor(log_sphere_area(self.dim), dtype=self.dtype, device=self.device)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return unit_rows(torch.randn(shape, dtype=self.dtype, device=self.device))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return (-self._log_area()).expand(value.shape[:-1])

    def entropy(self):
        return self._log_area()
