"""The per-row work of a vMF draw as compiled loops (numba), for tensors on the CPU.

At training batch sizes (tens of rows) a vMF draw is a few hundred operations on a few dozen
numbers each, so in torch its cost is the per-operation overhead, not arithmetic. Here the same
float64 math as distributions/vmf.py's torch functions runs as one compiled loop per piece: the Bessel values
log I_v and I_{v+1}/I_v (bessel.py's algorithm), the acceptance step of Wood's sampler, the
implicit gradient dw/dkappa, the Householder map with its hand-written backward, the entropy with
its slope, and the head transform. Inside a
training step each call costs several times what it costs alone (the step's weights evict the
caches between calls), so the pieces are few calls each. The random draws still come from
torch's generator, in the same calls and order as the torch functions make them, so a seed gives
the same draws on either path; tests/test_vmf.py checks that both paths agree to a few ulps. The
torch functions stay the reference and run on other devices.

numba compiles each kernel on first use (seconds) and caches it beside this file.
"""

from __future__ import annotations

import math
from functools import cache

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.extending import intrinsic
from torch.autograd.function import once_differentiable

from ..distributions import vmf as _definition
from ..distributions.bessel import _DEBYE_MIN_ORDER, _DEBYE_P, _SERIES_MAX_X, _SERIES_TERMS

_TINY64 = np.finfo(np.float64).tiny
# P_k(p2) = sum_j _DEBYE_COEFFICIENTS[j, k - 1] p2^j, k = 1.._DEBYE_TERMS (zeros past the degree)
_DEBYE_COEFFICIENTS = np.array(
    [[c[j] if j < len(c) else 0.0 for c in _DEBYE_P] for j in range(max(len(c) for c in _DEBYE_P))]
)

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _debye_log_series(a, radius, coefficients):
    """log(sum_k P_k(p^2) / R^k), p = a / R (bessel._debye_log_series)."""
    p2 = (a / radius) ** 2
    total = 0.0
    inv_r_pow = 1.0
    for k in range(coefficients.shape[1]):
        inv_r_pow /= radius
        poly = 0.0
        for j in range(coefficients.shape[0] - 1, -1, -1):
            poly = poly * p2 + coefficients[j, k]
        total += poly * inv_r_pow
    return math.log1p(total)


@_jit
def _bessel_kernel(v, x, coefficients, min_order, series_max_x, series_terms, log_iv, ratio):
    # bessel._log_iv_and_ratio_values, element by element: the power series for x <= 2, else
    # Debye at a = v + n >= 20 and n steps of the three-term recurrence down to v
    n = max(1, math.ceil(min_order - v))
    a = v + n
    for i in range(x.shape[0]):
        xi = x[i]
        if xi <= series_max_x:
            q = xi * xi / 4
            term_v = term_v1 = 1.0
            tail_v = tail_v1 = 0.0
            for k in range(1, series_terms + 1):
                term_v *= q / (k * (v + k))
                term_v1 *= q / (k * (v + 1 + k))
                tail_v += term_v
                tail_v1 += term_v1
            xlogy = v * math.log(xi / 2) if v != 0 else 0.0
            log_iv[i] = xlogy - math.lgamma(v + 1) + math.log1p(tail_v)
            r = xi / (2 * (v + 1)) * ((1 + tail_v1) / (1 + tail_v))
        else:
            r0 = math.hypot(a, xi)
            r1 = math.hypot(a + 1, xi)
            log_series = _debye_log_series(a, r0, coefficients)
            log_series_next = _debye_log_series(a + 1, r1, coefficients)
            log_ia = r0 + a * math.log(xi / (a + r0)) - 0.5 * math.log(2 * math.pi * r0) + log_series
            d_radius = (2 * a + 1) / (r0 + r1)
            d_a_eta = d_radius + math.log(xi / (a + 1 + r1)) - a * math.log1p((1 + d_radius) / (a + r0))
            d_prefactor = -0.5 * math.log1p(d_radius / r0)
            y_next = math.exp(d_a_eta + d_prefactor + log_series_next - log_series)  # I_{a+1} / I_a
            inv_x = 1 / xi
            y = y_next + 2 * a * inv_x  # y_k = I_k / I_a, from k = a - 1 down to v
            y_next = 1.0
            for step in range(1, n):
                y, y_next = y_next + 2 * (a - step) * y * inv_x, y
            log_iv[i] = log_ia + math.log(y)
            r = y_next / y
        ratio[i] = min(r, 1.0)  # a ratio above 1 can only come from rounding


def bessel_values(v: float, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log I_v(kappa), I_{v+1}/I_v(kappa)) in float64, as bessel._log_iv_and_ratio_values."""
    flat = np.ascontiguousarray(kappa, dtype=np.float64).reshape(-1)
    log_iv, ratio = np.empty_like(flat), np.empty_like(flat)
    _bessel_kernel(
        float(v), flat, _DEBYE_COEFFICIENTS, _DEBYE_MIN_ORDER, _SERIES_MAX_X, _SERIES_TERMS, log_iv, ratio
    )
    return log_iv.reshape(np.shape(kappa)), ratio.reshape(np.shape(kappa))


@_jit
def _wood_b(kappa, m):
    # vmf._wood_b: (m - 1) / (2k + sqrt(4k^2 + (m-1)^2)), without the cancellation at large kappa
    return (m - 1) / (2 * kappa + math.hypot(2 * kappa, m - 1))


@_jit
def _wood_round(kappa, gammas, uniform, m, w, eps, got):
    # one round of vmf._sample_w_wood: the first accepted proposal of each row, the Beta
    # proposals formed from gamma pairs as vmf._beta_from_gammas forms them
    top = 1 - np.finfo(np.float64).eps / 2
    for i in range(gammas.shape[0]):
        b = _wood_b(kappa[i], m)
        one_m_x0 = 2 * b / (1 + b)
        x0 = 1 - one_m_x0
        log_norm = math.log(one_m_x0 * (1 + x0))
        got[i] = False
        for j in range(gammas.shape[1]):
            e = min(max(gammas[i, j, 0] / (gammas[i, j, 0] + gammas[i, j, 1]), _TINY64), top)
            one_m_w = 2 * b * e / (1 - (1 - b) * e)
            log_ratio = kappa[i] * (one_m_x0 - one_m_w) + (m - 1) * (
                math.log(one_m_x0 + x0 * one_m_w) - log_norm
            )
            if math.log(uniform[i, j]) <= log_ratio:
                w[i] = 1 - one_m_w
                eps[i] = e
                got[i] = True
                break


def draw_w(kappa: np.ndarray, m: int, max_proposals: int, round_elements: int, concentration):
    """vmf._draw_w for float64 kappa (N,): (w, eps), drawn with torch's CPU generator by the
    same calls as vmf._sample_w_wood (m != 3) or the inverse CDF (m = 3)."""
    if m == 3:
        r = torch.rand(kappa.shape, dtype=torch.float64).numpy()
        return 1 + np.log1p(r * np.expm1(-2 * kappa)) / kappa, r
    w, eps = np.empty_like(kappa), np.empty_like(kappa)
    pending = np.arange(kappa.size)
    while pending.size:
        n = pending.size
        proposals = max(1, min(max_proposals, round_elements // n))
        gammas = torch._standard_gamma(concentration.expand(n, proposals, 2)).numpy()
        uniform = torch.rand((n, proposals), dtype=torch.float64).numpy()
        w_round, eps_round, got = np.empty(n), np.empty(n), np.empty(n, dtype=np.bool_)
        _wood_round(kappa if n == kappa.size else kappa[pending], gammas, uniform, m, w_round, eps_round, got)
        if n == kappa.size and got.all():  # the usual outcome at training batch sizes
            return w_round, eps_round
        w[pending[got]] = w_round[got]
        eps[pending[got]] = eps_round[got]
        pending = pending[~got]
    return w, eps


@intrinsic
def _float_bits(typingctx, x):
    # the IEEE-754 bits of a float64 as an int64 (a register move the vectoriser keeps)
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_float(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


# Polynomial sin, log and exp for the dw/dkappa quadrature: libm's are calls the compiler cannot
# vectorise, and they were most of the quadrature's time. These are the textbook reductions with
# Taylor / atanh series carried past float64 resolution (<= 1 ulp against libm over their ranges,
# tested), so that the quadrature's node loop runs several nodes per instruction.
_LN2_HI = 6.93147180369123816490e-01  # ln 2 with its low bits zero, so n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SIN_TAYLOR = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(1, 9))  # x^3 ... x^17
_ATANH_SERIES = tuple(1 / (2 * k + 1) for k in range(1, 12))  # s^3 ... s^23
_EXP_TAYLOR = tuple(1 / math.factorial(k) for k in range(14))  # r^0 ... r^13
# error_model="numpy": no zero-division checks, which would keep divisions out of vector code
_jit_vectorised = numba.njit(cache=True, nogil=True, error_model="numpy")
_vec = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_vec
def _sin_to_quarter_pi(x):
    # sin x for 0 <= x <= pi/4: the series to x^17 (the next term is < 5e-17 of sin x)
    x2 = x * x
    p = 0.0
    for k in range(len(_SIN_TAYLOR) - 1, -1, -1):
        p = p * x2 + _SIN_TAYLOR[k]
    return x + x * x2 * p


@_vec
def _log_normal(y):
    # log y for a normal positive float64: y = 2^e f with f in [sqrt(1/2), sqrt 2), log f = 2 atanh s
    bits = _float_bits(y)
    e = (bits >> 52) - 1023
    f = _bits_float((bits & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = f > 1.4142135623730951
    f = 0.5 * f if big else f
    e = e + 1 if big else e
    s = (f - 1) / (f + 1)
    s2 = s * s
    p = 0.0
    for k in range(len(_ATANH_SERIES) - 1, -1, -1):
        p = p * s2 + _ATANH_SERIES[k]
    ef = float(e)
    return ef * _LN2_HI + (ef * _LN2_LO + (2 * s + 2 * s * s2 * p))


@_vec
def _exp_or_zero(x):
    # e^x for x <= 709, and 0 below -708 (there e^x < 3e-308: nothing a quadrature sum keeps)
    xc = min(max(x, -708.0), 709.0)
    n = np.floor(xc * 1.4426950408889634 + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = 0.0
    for k in range(len(_EXP_TAYLOR) - 1, -1, -1):
        p = p * r + _EXP_TAYLOR[k]
    value = p * _bits_float((np.int64(n) + 1023) << 52)
    return 0.0 if x < -708.0 else value


@_jit_vectorised
def _dw_dkappa_kernel(w, eps, kappa, m, mean, nodes, weights, out):
    # vmf._dw_dkappa row by row: the integral over the side of w away from the mean A, in theta
    nu = 0.5 * (m - 3)
    integrand = np.empty(nodes.shape[0])
    for i in range(w.shape[0]):
        k = kappa[i]
        b = _wood_b(k, m)
        theta_w = math.atan2(math.sqrt(eps[i]), math.sqrt(1 - eps[i]))
        upper = w[i] >= mean[i]
        lo = 0.0 if upper else theta_w
        half = 0.5 * ((theta_w if upper else 0.5 * math.pi) - lo)
        one_m_w = 1 - w[i]
        row = k * one_m_w + (nu + 1) * math.log(4 * b) - nu * math.log(one_m_w * (1 + w[i]))
        one_m_mean = 1 - mean[i]
        for j in range(nodes.shape[0]):
            # the smaller of sin and cos from the series, the other as a square root (both to full
            # relative precision); (2nu + 1) log(sin cos) - (2nu + 2) log(den) is taken as
            # (m - 2) log(sin cos / den) - log(den), the last factor divided out after the exp
            theta = lo + half * (1 + nodes[j])
            low = theta <= 0.25 * math.pi
            small = _sin_to_quarter_pi(theta if low else 0.5 * math.pi - theta)
            large = math.sqrt((1 - small) * (1 + small))
            sin = small if low else large
            cos = large if low else small
            b_sin2 = b * (sin * sin)
            inv_den = 1 / (cos * cos + b_sin2)
            half_one_m_t = b_sin2 * inv_den  # (1 - t) / 2
            log_integrand = (
                row + (m - 2) * _log_normal(max(sin * cos * inv_den, 1e-300)) - 2 * k * half_one_m_t
            )
            integrand[j] = (one_m_mean - 2 * half_one_m_t) * _exp_or_zero(log_integrand) * inv_den
        total = 0.0
        for j in range(nodes.shape[0]):
            total += weights[j] * integrand[j]
        out[i] = total * (half if upper else -half)


def dw_dkappa(w, eps, kappa, m, mean, nodes, weights):
    """vmf._dw_dkappa (see there for the derivation), float64 arrays (N,)."""
    out = np.empty_like(w)
    _dw_dkappa_kernel(w, eps, kappa, m, mean, nodes, weights, out)
    return out


def dw_dkappa_any(w, eps, kappa, m, mean, nodes, weights):
    """vmf._dw_dkappa_any: the closed form for m = 3, the quadrature otherwise."""
    if m == 3:
        e = np.expm1(-2 * kappa)
        return (-2 * eps * (1 + e) / (1 + eps * e) - (w - 1)) / kappa
    return dw_dkappa(w, eps, kappa, m, mean, nodes, weights)


@_jit
def _householder_row(loc, w, tangent, i, u, z0):
    # u = e1 - s loc_i with s = -sign(loc_i1) (vmf._householder_vector) and z0 = (w, r t_i);
    # fills u and z0, returns (s, r, u.u, u.z0 / u.u)
    m = loc.shape[1]
    r = math.sqrt(max((1 - w[i]) * (1 + w[i]), _TINY64))
    s = -1.0 if loc[i, 0] > 0 else 1.0
    uu = 0.0
    uz = 0.0
    for j in range(m):
        u[j] = (1.0 if j == 0 else 0.0) - s * loc[i, j]
        z0[j] = w[i] if j == 0 else r * tangent[i, j - 1]
        uu += u[j] * u[j]
        uz += u[j] * z0[j]
    return s, r, uu, uz / uu


@_jit
def _sphere_forward(loc, w, tangent, z):
    m = loc.shape[1]
    u, z0 = np.empty(m), np.empty(m)
    for i in range(loc.shape[0]):
        s, _, _, proj = _householder_row(loc, w, tangent, i, u, z0)
        for j in range(m):
            z[i, j] = s * (z0[j] - 2 * proj * u[j])


@_jit
def _sphere_backward(loc, w, tangent, grad, grad_loc, grad_w):
    # z = s f(u), f(u) = z0 - 2 u (u.z0) / (u.u): grad_loc = -J_f^T g; Q^T g gives d/dz0, and
    # z0 = (w, r t) with dr/dw = -w / r (0 where r was clamped)
    m = loc.shape[1]
    u, z0 = np.empty(m), np.empty(m)
    for i in range(loc.shape[0]):
        s, r, uu, proj = _householder_row(loc, w, tangent, i, u, z0)
        u_grad = 0.0
        for j in range(m):
            u_grad += u[j] * grad[i, j]
        u_grad /= uu
        tangential = 0.0
        grad_w0 = 0.0
        for j in range(m):
            grad_loc[i, j] = 2 * (u_grad * z0[j] + proj * grad[i, j] - 2 * (proj * u_grad) * u[j])
            grad_z0 = s * (grad[i, j] - 2 * u_grad * u[j])
            if j == 0:
                grad_w0 = grad_z0
            else:
                tangential += grad_z0 * tangent[i, j - 1]
        dr_dw = 0.0 if r <= _TINY64 else -w[i] / r
        grad_w[i] = grad_w0 + tangential * dr_dw


class SphereMap:
    """vmf._PlaceOnSphere on arrays: z = Q(loc) (w, sqrt(1 - w^2) t), and its backward, computed
    in float64 and returned in loc's dtype.

    loc (N, m) and tangent (N, m - 1) in the model's dtype; kappa, w, eps and mean (A_m(kappa),
    needed by dw/dkappa for m != 3) float64 (N,); nodes and weights: the quadrature of dw_dkappa."""

    def __init__(self, loc, kappa, w, eps, tangent, mean, nodes, weights):
        self.loc, self.tangent = np.ascontiguousarray(loc), np.ascontiguousarray(tangent)
        self.kappa, self.w, self.eps = kappa, w, eps
        self.mean, self.nodes, self.weights = mean, nodes, weights
        self.z = np.empty(loc.shape, dtype=loc.dtype)
        _sphere_forward(self.loc, w, self.tangent, self.z)

    def backward(self, grad, need_loc, need_kappa, dw=None):
        """(d/dloc, d/dkappa) of sum(grad * z); d/dkappa in float64 (dw: dw/dkappa when the caller
        differentiates w otherwise than implicitly)."""
        grad_loc, grad_w = np.empty(self.loc.shape, dtype=self.loc.dtype), np.empty_like(self.w)
        _sphere_backward(self.loc, self.w, self.tangent, np.ascontiguousarray(grad), grad_loc, grad_w)
        grad_kappa = None
        if need_kappa:
            m = self.loc.shape[-1]
            if dw is None:
                dw = dw_dkappa_any(self.w, self.eps, self.kappa, m, self.mean, self.nodes, self.weights)
            grad_kappa = grad_w * dw
        return (grad_loc if need_loc else None), grad_kappa


@_jit
def normalize_rows_(x):
    """x (N, k) divided in place by its rows' Euclidean norms (summed in float64); a row of zeros
    becomes e1, as sphere.unit_rows."""
    for i in range(x.shape[0]):
        squares = 0.0
        for j in range(x.shape[1]):
            squares += float(x[i, j]) * x[i, j]
        if squares == 0.0:
            x[i, 0] = 1.0
            continue
        inv = 1 / math.sqrt(squares)
        for j in range(x.shape[1]):
            x[i, j] = x[i, j] * inv


@_jit
def _entropy_kernel(kappa, log_kappa, log_iv, ratio, m, value, slope):
    # vmf._Entropy: H = -k A - log C_m(k), log C_m = (m/2 - 1) log k - (m/2) log 2 pi - log I,
    # and dH/dk = -k A' = (m - 1) A - k (1 - A^2); in float64, the value stored in kappa's dtype
    log_2pi = 0.5 * m * math.log(2 * math.pi)
    for i in range(kappa.shape[0]):
        k, a = kappa[i], ratio[i]
        value[i] = -k * a - ((0.5 * m - 1) * log_kappa[i] - log_2pi - log_iv[i])
        slope[i] = (m - 1) * a - k * (1 - a * a)


def entropy_and_slope(kappa: np.ndarray, log_iv: np.ndarray, ratio: np.ndarray, m: int):
    """(H(kappa) in kappa's dtype, dH/dkappa in float64), from float64 (log I_{m/2-1}, A_m)."""
    k = np.asarray(kappa, dtype=np.float64).reshape(-1)
    # log kappa from NumPy's vectorised log, which agrees with torch's to the last bit where libm's
    # (math.log) does not (tests/test_vmf.py, m = 41): in float32 one bit flips the rounding of an
    # H of ~16, ~1e4 ulps of a KL of ~1e-4
    value, slope = np.empty(k.shape, dtype=kappa.dtype), np.empty(k.shape)
    _entropy_kernel(k, np.log(k), np.ascontiguousarray(log_iv).reshape(-1),
                    np.ascontiguousarray(ratio).reshape(-1), m, value, slope)
    return value.reshape(kappa.shape), slope


@_jit
def _scaled_kernel(grad, factor, out):
    for i in range(grad.shape[0]):
        out[i] = grad[i] * factor[i]


def scaled(grad: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """grad * factor (float64, flat) computed in float64 and returned in grad's dtype and shape."""
    out = np.empty(grad.shape, dtype=grad.dtype)
    _scaled_kernel(np.ascontiguousarray(grad).reshape(-1), factor, out.reshape(-1))
    return out


@_jit
def _head_forward(raw, loc, kappa, inv_norm, threshold):
    # loc = raw[:, :m] / max(|raw[:, :m]|, 1e-12) (F.normalize); kappa = softplus(raw[:, m]) + 1
    m = loc.shape[1]
    for i in range(raw.shape[0]):
        squares = 0.0
        for j in range(m):
            squares += float(raw[i, j]) * raw[i, j]
        inv = 1 / max(math.sqrt(squares), 1e-12)
        inv_norm[i] = inv if squares > 1e-24 else -inv  # the sign marks a clamped norm
        for j in range(m):
            loc[i, j] = raw[i, j] * inv
        x = float(raw[i, m])
        kappa[i] = (x if x > threshold else math.log1p(math.exp(x))) + 1


@_jit
def _head_backward(raw, loc, inv_norm, grad_loc, grad_kappa, grad_raw, threshold):
    m = loc.shape[1]
    for i in range(raw.shape[0]):
        inv = abs(inv_norm[i])
        along = 0.0
        if inv_norm[i] > 0:  # where the norm was clamped, loc = raw / 1e-12 is linear in raw
            for j in range(m):
                along += float(grad_loc[i, j]) * loc[i, j]
        for j in range(m):
            grad_raw[i, j] = (grad_loc[i, j] - loc[i, j] * along) * inv
        x = float(raw[i, m])
        grad_raw[i, m] = grad_kappa[i] * (1.0 if x > threshold else 1 / (1 + math.exp(-x)))


def head_forward(raw: np.ndarray, threshold: float):
    """(loc, kappa, what head_backward needs) from raw head outputs (N, m + 1)."""
    n, m = raw.shape[0], raw.shape[1] - 1
    loc, kappa, inv_norm = np.empty((n, m), dtype=raw.dtype), np.empty(n, dtype=raw.dtype), np.empty(n)
    _head_forward(raw, loc, kappa, inv_norm, threshold)
    return loc, kappa, inv_norm


def head_backward(raw, loc, inv_norm, grad_loc, grad_kappa, threshold):
    grad_raw = np.empty_like(raw)
    _head_backward(raw, loc, inv_norm, np.ascontiguousarray(grad_loc), np.ascontiguousarray(grad_kappa),
                   grad_raw, threshold)
    return grad_raw


@cache
def _gauss_legendre(n):
    nodes, weights = _definition._gauss_legendre(n, torch.device("cpu"))
    return nodes.numpy(), weights.numpy()


class _Head(torch.autograd.Function):
    """(normalize(raw[:, :m]), softplus(raw[:, m]) + 1) for raw (N, m + 1) on the CPU (the S-VAE
    head of models/spherical.py), with its backward: one graph node instead of the ~8 of
    F.normalize and softplus."""

    @staticmethod
    def forward(ctx, raw, threshold):
        raw_np = raw.detach().contiguous().numpy()
        loc, kappa, inv_norm = head_forward(raw_np, threshold)
        ctx.host, ctx.threshold = (raw_np, loc, inv_norm), threshold
        return torch.from_numpy(loc), torch.from_numpy(kappa)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loc, grad_kappa):
        raw_np, loc, inv_norm = ctx.host
        grad = head_backward(raw_np, loc, inv_norm, grad_loc.numpy(), grad_kappa.numpy(), ctx.threshold)
        return torch.from_numpy(grad), None


class Host:
    """distributions/vmf.py's _Torch maths on CPU tensors, as the loops above: one call per piece
    instead of dozens of torch operations."""

    @staticmethod
    def bessel_values(v, kappa):
        return tuple(torch.from_numpy(t) for t in bessel_values(v, kappa.numpy()))

    @staticmethod
    def head(raw, threshold):
        return _Head.apply(raw, threshold)

    @staticmethod
    def draw_w(kappa, m):
        concentration = _definition._beta_concentration(m, torch.float64, kappa.device) if m != 3 else None
        w, eps = draw_w(kappa.numpy(), m, _definition._MAX_PROPOSALS, _definition._ROUND_ELEMENTS, concentration)
        return torch.from_numpy(w), torch.from_numpy(eps)

    @staticmethod
    def normalize_rows(tangent):
        normalize_rows_(tangent.numpy())
        return tangent

    @staticmethod
    def place(ctx, loc, kappa, w, eps, tangent, m, mean):
        # kept on ctx, not saved tensors: the draws are fresh and nothing else holds them
        k = kappa.detach().numpy().astype(np.float64)
        if mean is None and m != 3:
            mean = Host.bessel_values(0.5 * m - 1, torch.from_numpy(k))[1]
        nodes = _gauss_legendre(_definition._quadrature_nodes(m, kappa.dtype)) if m != 3 else (None, None)
        ctx.host = SphereMap(
            loc.detach().numpy(), k, w.numpy(), eps.numpy(), tangent.numpy(),
            None if mean is None else mean.numpy(), *nodes,
        )
        ctx.kappa_dtype = kappa.dtype
        return torch.from_numpy(ctx.host.z)

    @staticmethod
    def place_backward(ctx, grad):
        dw = None
        if ctx.gradient == "accepted" and ctx.m != 3 and ctx.needs_input_grad[2]:
            h = ctx.host
            dw = _definition._dw_dkappa_accepted(*(torch.from_numpy(a) for a in (h.w, h.eps, h.kappa)), ctx.m).numpy()
        grad_loc, grad_kappa = ctx.host.backward(grad.numpy(), *ctx.needs_input_grad[1:3], dw=dw)
        if grad_loc is not None:
            grad_loc = torch.from_numpy(grad_loc)
        if grad_kappa is not None:
            grad_kappa = torch.from_numpy(grad_kappa).to(ctx.kappa_dtype)
        return grad_loc, grad_kappa

    @staticmethod
    def entropy(ctx, kappa, log_iv, ratio, m):
        value, ctx.host = entropy_and_slope(kappa.detach().numpy(), log_iv.numpy(), ratio.numpy(), m)
        return torch.from_numpy(value)

    @staticmethod
    def entropy_backward(ctx, grad):
        return torch.from_numpy(scaled(grad.numpy(), ctx.host))
