"""The per-row work of a vMF training draw in NumPy, for tensors on the CPU.

At training batch sizes (tens of rows) a vMF draw is a few hundred operations on a few dozen
numbers each, and its cost is the per-operation overhead: ~2-3 us for a torch op (dispatch,
allocation, autograd bookkeeping) against ~0.3-1 us for the same NumPy op. This module repeats,
operation for operation, the float64 math of vmf.py's torch functions that vmf.py runs on CPU
tensors: the Bessel values (through scipy.special.ive), Wood's sampler, the implicit gradient
dw/dkappa and the Householder map with its hand-written backward. The random draws still come
from torch's generator, in the same calls and order as the torch functions make them, so a seed
gives the same draws on either path; tests/test_vmf.py checks that both paths agree to rounding.
The torch functions stay the reference and run on other devices.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import ive

_TINY64 = np.finfo(np.float64).tiny


def bessel_values(v: float, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(log I_v(kappa), I_{v+1}/I_v(kappa)) in float64 from the exponentially scaled Bessel
    functions, or None where scipy's values under- or overflow (small kappa with a large order);
    the caller then uses the torch evaluation, which covers every range."""
    scaled = ive(np.array([v, v + 1]).reshape((2,) + (1,) * kappa.ndim), kappa)
    if not (np.isfinite(scaled).all() and (scaled > 1e-290).all()):
        return None
    return np.log(scaled[0]) + kappa, np.minimum(scaled[1] / scaled[0], 1.0)


def wood_b(kappa, m):
    """vmf._wood_b: (m - 1) / (2k + sqrt(4k^2 + (m-1)^2))."""
    return (m - 1) / (2 * kappa + np.hypot(2 * kappa, m - 1))


def draw_w(kappa: np.ndarray, m: int, max_proposals: int, round_elements: int, concentration):
    """vmf._draw_w for float64 kappa (N,): (w, eps), drawn with torch's CPU generator by the
    same calls as vmf._sample_w_wood (m != 3) or the inverse CDF (m = 3)."""
    if m == 3:
        r = torch.rand(kappa.shape, dtype=torch.float64).numpy()
        return 1 + np.log1p(r * np.expm1(-2 * kappa)) / kappa, r
    b = wood_b(kappa, m)
    one_m_x0 = 2 * b / (1 + b)
    x0 = 1 - one_m_x0
    log_norm = np.log(one_m_x0 * (1 + x0))
    columns = [t[:, None] for t in (b, kappa, one_m_x0, x0, log_norm)]
    w, eps = np.empty_like(kappa), np.empty_like(kappa)
    pending = np.arange(kappa.size)
    while pending.size:
        n = pending.size
        proposals = max(1, min(max_proposals, round_elements // n))
        e = torch._sample_dirichlet(concentration.expand(n, proposals, 2)).numpy()[..., 0]
        uniform = torch.rand((n, proposals), dtype=torch.float64).numpy()
        bp, k, om_x0, x0p, ln = columns if n == kappa.size else (t[pending] for t in columns)
        one_m_w = 2 * bp * e / (1 - (1 - bp) * e)
        log_ratio = k * (om_x0 - one_m_w) + (m - 1) * (np.log(om_x0 + x0p * one_m_w) - ln)
        accept = np.log(uniform) <= log_ratio
        first = accept.argmax(-1)
        rows = np.arange(n)
        got = accept[rows, first]
        if n == kappa.size and got.all():  # the usual outcome at training batch sizes
            return 1 - one_m_w[rows, first], e[rows, first]
        done, first = rows[got], first[got]
        w[pending[got]] = 1 - one_m_w[done, first]
        eps[pending[got]] = e[done, first]
        pending = pending[~got]
    return w, eps


def dw_dkappa(w, eps, kappa, m, mean, nodes, weights):
    """vmf._dw_dkappa (see there for the derivation), float64 arrays (N,)."""
    nu = 0.5 * (m - 3)
    b = wood_b(kappa, m)
    theta_w = np.arctan2(np.sqrt(eps), np.sqrt(1 - eps))
    upper = w >= mean
    lo = np.where(upper, 0.0, theta_w)
    half = 0.5 * (np.where(upper, theta_w, 0.5 * math.pi) - lo)
    theta = torch.from_numpy(lo[:, None] + half[:, None] * (1 + nodes))
    # torch's vectorised sin and cos take a third of the time of NumPy's for float64
    sin, cos = torch.sin(theta).numpy(), torch.cos(theta).numpy()
    b_sin2 = b[:, None] * (sin * sin)
    den = cos * cos + b_sin2
    half_one_m_t = b_sin2 / den
    one_m_w = 1 - w
    row = kappa * one_m_w + (nu + 1) * np.log(4 * b) - nu * np.log(one_m_w * (1 + w))
    log_integrand = (
        row[:, None]
        + (2 * nu + 1) * np.log(sin * cos)
        - (2 * nu + 2) * np.log(den)
        - 2 * kappa[:, None] * half_one_m_t
    )
    integrand = ((1 - mean)[:, None] - 2 * half_one_m_t) * np.exp(log_integrand)
    return (integrand @ weights) * np.where(upper, half, -half)


def dw_dkappa_any(w, eps, kappa, m, mean, nodes, weights):
    """vmf._dw_dkappa_any: the closed form for m = 3, the quadrature otherwise."""
    if m == 3:
        e = np.expm1(-2 * kappa)
        return (-2 * eps * (1 + e) / (1 + eps * e) - (w - 1)) / kappa
    return dw_dkappa(w, eps, kappa, m, mean, nodes, weights)


class SphereMap:
    """vmf._PlaceOnSphere on NumPy arrays: z = Q(loc) (w, sqrt(1 - w^2) t), and its backward.

    loc (N, m) and tangent (N, m - 1) in the model's dtype; kappa, w, eps and mean (A_m(kappa),
    needed by dw/dkappa for m != 3) float64 (N,); nodes and weights: the quadrature of dw_dkappa."""

    def __init__(self, loc, kappa, w, eps, tangent, mean, nodes, weights):
        self.kappa, self.w, self.eps, self.tangent = kappa, w, eps, tangent
        self.mean, self.nodes, self.weights = mean, nodes, weights
        dtype = loc.dtype
        self.radius = np.sqrt(np.maximum((1 - w) * (1 + w), _TINY64))
        z0 = np.empty(loc.shape, dtype=dtype)
        z0[:, 0] = w
        np.multiply(self.radius.astype(dtype)[:, None], tangent, out=z0[:, 1:])
        s = np.where(loc[:, :1] > 0, -1.0, 1.0).astype(dtype)
        u = -s * loc
        u[:, 0] += 1
        uu = (u * u).sum(-1, keepdims=True)
        proj = (u * z0).sum(-1, keepdims=True) / uu
        self.z = s * (z0 - 2 * proj * u)
        self.z0, self.s, self.u, self.uu, self.proj = z0, s, u, uu, proj

    def backward(self, grad, need_loc, need_kappa):
        """(d/dloc, d/dkappa) of sum(grad * z); d/dkappa in float64."""
        u, proj = self.u, self.proj
        u_grad = (u * grad).sum(-1, keepdims=True) / self.uu
        grad_loc = grad_kappa = None
        if need_loc:
            grad_loc = 2 * (u_grad * self.z0 + proj * grad - 2 * (proj * u_grad) * u)
        if need_kappa:
            w, radius, m = self.w, self.radius, self.z.shape[-1]
            grad_z0 = self.s * (grad - 2 * u_grad * u)
            tangential = (grad_z0[:, 1:] * self.tangent).sum(-1).astype(np.float64)
            dr_dw = np.where(radius <= _TINY64, 0.0, -w / radius)
            grad_w = grad_z0[:, 0].astype(np.float64) + tangential * dr_dw
            dw = dw_dkappa_any(w, self.eps, self.kappa, m, self.mean, self.nodes, self.weights)
            grad_kappa = grad_w * dw
        return grad_loc, grad_kappa
