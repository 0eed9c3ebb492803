"""Modified Bessel functions of the first kind in log space, in pure torch: one implementation,
log_iv_and_ratio (log I_v and I_{v+1}/I_v together, what the vMF needs), which log_iv and
bessel_ratio read (kernels/vmf.py compiles the same three pieces for CPU tensors).

torch.special only has orders 0 and 1, and scipy-style ``ive`` underflows to 0 at high order and
small argument (m = 128, kappa ~ 1.5 gives NaN in widely used vMF code), so we never form I_v(x)
itself.  Three pieces, all evaluated in float64:

* uniform (Debye) asymptotic expansion of I_a(x) for orders a >= _DEBYE_MIN_ORDER; it is uniform
  in x, so it covers x in (0, inf) at once.  The truncation error is u_11(p) / R^11 with
  R = sqrt(a^2 + x^2) >= 20 and max |u_11| ~ 3.6, i.e. ~2e-14 relative.
* for lower orders, the values are carried down from order a = v + n >= 20 by the backward
  three-term recurrence I_{k-1} = (2k/x) I_k + I_{k+1}, the stable direction for I (the dominant
  solution as the order decreases).
* the power series for x <= 2, where log I_v(x) can be tiny (log I_0(x) ~ x^2/4) and only the
  series, summed with log1p, keeps its relative accuracy.

The log ratio at the top of the chain is taken from the Debye expansion with every difference
written without cancellation, so bessel_ratio keeps ~1e-15 relative accuracy even at x = 1e5,
where differencing two log I values of size 1e5 would lose five digits.
"""

import math
from fractions import Fraction
from functools import cache

import torch

_DEBYE_MIN_ORDER = 20
_DEBYE_TERMS = 10
_SERIES_MAX_X = 2.0
_SERIES_TERMS = 14  # (x^2/4)^k / (k!)^2 < 1e-21 at k = 14 for x <= 2


def _debye_coefficients(n_terms):
    """Coefficients of P_k with u_k(p) = p^k P_k(p^2), k = 1..n_terms, constant term first.

    Built exactly from the recurrence
    u_{k+1}(p) = p^2 (1 - p^2) u_k'(p) / 2 + (1/8) int_0^p (1 - 5 t^2) u_k(t) dt  (DLMF 10.41.9)
    so no table of magic numbers is needed.
    """
    u = [Fraction(1)]  # coefficients of u_0 in powers of p
    out = []
    for k in range(n_terms):
        deriv = [i * c for i, c in enumerate(u)][1:]
        nxt = [Fraction(0)] * (len(u) + 3)
        for i, c in enumerate(deriv):
            nxt[i + 2] += c / 2
            nxt[i + 4] -= c / 2
        for i, c in enumerate(u):
            nxt[i + 1] += c / (8 * (i + 1))
            nxt[i + 3] -= 5 * c / (8 * (i + 3))
        u = nxt
        # u_{k+1} only has powers p^(k+1), p^(k+3), ..., p^(3k+3)
        out.append([float(c) for c in u[k + 1 :: 2]])
    return out


_DEBYE_P = _debye_coefficients(_DEBYE_TERMS)


def _by_order(v, x, fn):
    """fn(order, x64) -> float64 values, for an order v that is a number or a tensor broadcasting
    with x (each distinct order evaluated once); returned in x's floating dtype."""
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if isinstance(v, (int, float)):
        return fn(float(v), x.to(torch.float64)).to(x.dtype)
    v, x64 = torch.broadcast_tensors(torch.as_tensor(v, device=x.device).detach().to(torch.float64),
                                     x.to(torch.float64))
    out = torch.zeros_like(x64)
    for order in torch.unique(v).tolist():
        here = v == order
        out = out.masked_scatter(here, fn(order, x64[here]))
    return out.to(x.dtype)


def log_iv(v, x):
    """log I_v(x) for order v >= 0 (a number, or a tensor broadcasting with x) and x > 0;
    differentiable in x (to any order), not in v. Computed in float64 and returned in the floating
    dtype of x (log_iv_and_ratio below, order by order)."""
    return _by_order(v, x, lambda order, x64: log_iv_and_ratio(order, x64)[0])


def bessel_ratio(v, x):
    """I_v(x) / I_{v-1}(x) for v >= 1/2 and x > 0, broadcasting; differentiable in x.

    With v = m/2 this is the vMF mean resultant length A_m(kappa)."""
    return _by_order(v, x, lambda order, x64: log_iv_and_ratio(order - 1, x64)[1])


# --- log I_v and I_{v+1} / I_v together, for one Python-float order (the vMF's needs) ----------


@cache
def _debye_power_table(dtype, device):
    """(T0, T): P_k(p2) = T0[k-1] + sum_{j >= 1} T[j-1, k-1] p2^j, k = 1.._DEBYE_TERMS."""
    rows = max(len(c) for c in _DEBYE_P)
    table = torch.tensor(
        [[c[j] if j < len(c) else 0.0 for c in _DEBYE_P] for j in range(rows)],
        dtype=dtype,
        device=device,
    )
    return table[0], table[1:]


def _debye_log_series_from_radius(a, radius):
    """_debye_log_series with R = sqrt(a^2 + x^2) given, as one small matrix product: the powers
    of p2 times the coefficient table, times the powers of 1/R (a handful of operations instead of
    a Horner pass of ~30; the same sum, to rounding, since every term carries a factor 1/R^k with
    R >= 20)."""
    const, table = _debye_power_table(radius.dtype, radius.device)
    p2 = (a / radius).square().unsqueeze(-1)
    poly = torch.cumprod(p2.expand(p2.shape[:-1] + table.shape[:1]), dim=-1) @ table + const
    inv_r = torch.reciprocal(radius).unsqueeze(-1)
    inv_r_pow = torch.cumprod(inv_r.expand(inv_r.shape[:-1] + const.shape), dim=-1)
    return torch.log1p((poly * inv_r_pow).sum(-1))


@cache
def _fused_constants(v, dtype, device):
    """Constants of _log_iv_and_ratio_values for order v: n, a = v + n, the Debye orders (a, a+1)
    as a (2,) tensor, and the power-series coefficients 1 / (k (w + k)), k = 1.._SERIES_TERMS,
    for w = v (row 0) and w = v + 1 (row 1) as a (2, _SERIES_TERMS) tensor."""
    # at least one recurrence step, as bessel_ratio(v + 1) takes: it is what makes the ratio
    # accurate to ~1e-16 rather than the Debye expansion's ~1e-14 alone
    n = max(1, math.ceil(_DEBYE_MIN_ORDER - v))
    a = v + n
    orders = torch.tensor([a, a + 1], dtype=dtype, device=device)
    series = torch.tensor(
        [[1.0 / (k * (w + k)) for k in range(1, _SERIES_TERMS + 1)] for w in (v, v + 1)],
        dtype=dtype,
        device=device,
    )
    return n, a, orders, series


def _log_iv_and_ratio_values(v, x):
    """(log I_v(x), I_{v+1}(x) / I_v(x)) for a Python-float order v >= 0 and float64 x > 0.

    The same three pieces as log_iv / bessel_ratio, but one evaluation gives both values:
    * x > _SERIES_MAX_X: Debye at a = v + n >= 20, then n steps down.  Instead of the ratios
      r_k = 1 / (2k/x + r_{k+1}) the steps carry the three-term recurrence they come from,
      y_{k-1} = (2k/x) y_k + y_{k+1} with y_a = 1, y_{a+1} = I_{a+1}/I_a (so y_k = I_k / I_a; the
      same backward, stable, direction), one fused operation per step; then I_{v+1}/I_v =
      y_{v+1}/y_v and log I_v = log I_a + log y_v.  Run on max(x, _SERIES_MAX_X), so y_v, which
      grows like (2/x)^n as x -> 0, stays far from overflow (smaller x take the series below).
    * x <= _SERIES_MAX_X: the power series of I_v and I_{v+1} (relative accuracy kept for tiny
      log I_v), all terms at once by a cumulative product.
    """
    n, a, orders, series_c = _fused_constants(float(v), x.dtype, x.device)
    small = x <= _SERIES_MAX_X
    xc = torch.clamp(x, min=_SERIES_MAX_X)
    # Debye expansion at orders a and a + 1 (as _debye, with the orders as cached constants)
    orders = orders.view((2,) + (1,) * x.dim())
    radius = torch.hypot(orders, xc)
    log_series, log_series_next = _debye_log_series_from_radius(orders, radius)
    r0, r1 = radius[0], radius[1]
    log_ia = r0 + a * torch.log(xc / (a + r0)) - 0.5 * torch.log(2 * math.pi * r0) + log_series
    d_radius = (2 * a + 1) / (r0 + r1)
    d_a_eta = d_radius + torch.log(xc / (a + 1 + r1)) - a * torch.log1p((1 + d_radius) / (a + r0))
    d_prefactor = -0.5 * torch.log1p(d_radius / r0)
    y_next = torch.exp(d_a_eta + d_prefactor + log_series_next - log_series)  # I_{a+1} / I_a
    inv_x = torch.reciprocal(xc)
    y = torch.add(y_next, inv_x, alpha=2 * a)  # y_{a-1}
    y_next = torch.ones_like(y)  # y_a
    for i in range(1, n):
        y, y_next = torch.addcmul(y_next, y, inv_x, value=2 * (a - i)), y
    ratio = y_next / y
    log_iv = log_ia + torch.log(y)
    if x.device.type == "cpu" and not bool(small.any()):
        # no small argument: the series would only be discarded (checked on the CPU alone, where
        # the check costs no device synchronisation)
        return log_iv, torch.clamp(ratio, max=1.0)
    # power series: term_k = prod_{j <= k} q / (j (w + j)), q = x^2 / 4, for w = v and v + 1;
    # I_{v+1} / I_v = (x / 2) / (v + 1) * (1 + tail_{v+1}) / (1 + tail_v)
    q = (x * x / 4).unsqueeze(-1).unsqueeze(-1)
    tail_v, tail_v1 = torch.cumprod(q * series_c, dim=-1).sum(-1).unbind(-1)
    log_small = torch.xlogy(v, x / 2) - math.lgamma(v + 1) + torch.log1p(tail_v)
    ratio_small = x / (2 * (v + 1)) * ((1 + tail_v1) / (1 + tail_v))
    # a ratio above 1 can only come from rounding (as clamped in bessel_ratio)
    ratio = torch.clamp(torch.where(small, ratio_small, ratio), max=1.0)
    return torch.where(small, log_small, log_iv), ratio


class _LogIvAndRatio(torch.autograd.Function):
    """(log I_v(x), I_{v+1}(x)/I_v(x)) with given forward values (computed once, maybe cached)."""

    @staticmethod
    def forward(ctx, x, v, log_iv_value, ratio_value):
        ctx.set_materialize_grads(False)
        log_iv, ratio = log_iv_value.clone(), ratio_value.clone()
        ctx.v = v
        ctx.save_for_backward(x, ratio)
        return log_iv, ratio

    @staticmethod
    def backward(ctx, grad_log, grad_ratio):
        x, r = ctx.saved_tensors
        v = ctx.v
        grad = None
        if grad_log is not None:  # d/dx log I_v = I_{v+1}/I_v + v/x
            grad = grad_log * (r + v / x)
        if grad_ratio is not None:  # Riccati equation of r = I_{v+1}/I_v
            g = grad_ratio * (1 - r * r - (2 * v + 1) * r / x)
            grad = g if grad is None else grad + g
        return grad, None, None, None


def log_iv_and_ratio(v, x, values=None):
    """(log I_v(x), I_{v+1}(x) / I_v(x)) for a Python-number order v >= 0 and float64 x > 0,
    both float64 and differentiable in x (to any order: the backward is written in the outputs).

    The ratio is bessel_ratio(v + 1, x).  `values`, when given, are the forward values from an
    earlier _log_iv_and_ratio_values(v, x.detach()) (a cache); the graph is built afresh each call.
    """
    if values is None:
        with torch.no_grad():
            values = _log_iv_and_ratio_values(float(v), x.detach())
    return _LogIvAndRatio.apply(x, float(v), *values)
