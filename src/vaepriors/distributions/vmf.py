"""von Mises-Fisher distribution on S^(m-1) in R^m (the uniform distribution on the sphere and the
Householder map, shared with the Power Spherical distribution, live in sphere.py).

Sampling follows Wood (1994): the cosine w = mu^T z is drawn (exactly by inverse CDF for m = 3,
otherwise by rejection from a transformed Beta((m-1)/2, (m-1)/2)); the tangent part is a
normalised Gaussian orthogonal to e1, and a Householder reflection maps e1 to mu.

Gradients.  Differentiating through the accepted Beta proposal (what widely used S-VAE code does)
ignores that the acceptance probability depends on kappa, and is biased in kappa unless the
score-function correction g_cor of Davidson et al. (2018) is added to the loss, which an rsample()
cannot do and which adds variance.  We use implicit reparameterisation instead (Figurnov et al.
2018): for the CDF F(w; kappa) of w, dw/dkappa = -(dF/dkappa)(w) / p(w), which is exact (so the
pathwise gradient is unbiased) and needs no change to the loss.  For m = 3 the inverse CDF is in
closed form and is differentiated directly.  The gradient in mu is pathwise through the
reflection, which is exact because z0 does not depend on mu.

Speed.  At training batch sizes every tensor here has a few dozen elements, so the cost is the
number of operations, not their size.  The map from the draws to z, the entropy (hence the KL to
the uniform) and the log-normalizer are therefore autograd Functions with hand-written first
derivatives (one graph node each), and the float64 Bessel values are computed once per
distribution and shared by all of them.  Each piece of that per-row math is defined once as torch
operations (_Torch, any device); vaepriors.kernels has its compiled twin for CPU tensors (numba: one
call per piece instead of dozens of operations) and chooses (math_for).
"""

import math
from functools import cache
from typing import ClassVar

import torch
from torch.autograd.function import once_differentiable
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl

from .. import kernels
from . import noise
from .bessel import _log_iv_and_ratio_values, log_iv_and_ratio
from .sphere import HypersphericalUniform, sphere, unit_rows
from .sphere import constant as _constant
from .sphere import householder_vector as _householder_vector
from .sphere import log_sphere_area as _log_sphere_area
from .sphere import reflect as _reflect

__all__ = ["HypersphericalUniform", "VonMisesFisher"]


def _wood_b(kappa, m):
    # Wood's b = (-2k + sqrt(4k^2 + (m-1)^2)) / (m-1), rewritten without the cancellation at large k
    two_kappa = 2 * kappa
    m_1 = _constant(m - 1, kappa.dtype, kappa.device)
    return (m - 1) / (two_kappa + torch.hypot(two_kappa, m_1))


def math_for(tensor):
    """The torch definition below, or its compiled twin where vaepriors.kernels chooses one."""
    return kernels.vmf_math(tensor) or _Torch


# Proposals drawn per pending row and round: up to _MAX_PROPOSALS, while a round has at most
# _ROUND_ELEMENTS of them.  Small batches (training) thus mostly finish in one round (the
# acceptance rate is >= ~0.68 for every m and kappa, so 3 proposals all fail with p < 0.033),
# trading a few extra Beta draws for fewer rounds; large batches (evaluation) draw one proposal
# per row.  The value is the fastest S-VAE training step of benchmarks/bench_speed.py.
_MAX_PROPOSALS = 3
_ROUND_ELEMENTS = 4096


def _sample_w_wood(kappa, m):
    """Wood's rejection sampler for w = mu^T z, m >= 2; kappa is a 1-D float64 tensor.

    Returns (w, eps), eps being the accepted Beta draw: w = (1 - (1+b) eps) / (1 - (1-b) eps).
    Every row still pending proposes again together, so the loop runs over rounds, not samples;
    a round may give a row several independent proposals, of which the first accepted one is
    taken (exactly the outcome of proposing them one after another).
    All the near-1 quantities (1 - w, 1 - x0, w - x0) are formed from b and eps directly, since
    at large kappa w and x0 both round to ~1.
    """
    concentration = _beta_concentration(m, kappa.dtype, kappa.device)
    b = _wood_b(kappa, m)
    one_m_x0 = 2 * b / (1 + b)
    x0 = 1 - one_m_x0
    # per-row constants of the log acceptance ratio, as (rows, 1) columns
    b, kappa, x0, one_m_x0 = (t.unsqueeze(-1) for t in (b, kappa, x0, one_m_x0))
    log_norm = torch.log(one_m_x0 * (1 + x0))
    w = torch.empty_like(kappa.squeeze(-1))
    eps = torch.empty_like(w)
    pending = None  # None: every row
    while True:
        if pending is None:
            n, bp, k, om_x0, x0p, ln = w.numel(), b, kappa, one_m_x0, x0, log_norm
        else:
            n = pending.numel()
            bp, k, om_x0, x0p, ln = (t[pending] for t in (b, kappa, one_m_x0, x0, log_norm))
        proposals = max(1, min(_MAX_PROPOSALS, _ROUND_ELEMENTS // max(n, 1)))
        e = _beta_from_gammas(torch._standard_gamma(concentration.expand(n, proposals, 2)))
        one_m_w = 2 * bp * e / (1 - (1 - bp) * e)
        # log acceptance ratio k (w - x0) + (m-1) log((1 - x0 w) / (1 - x0^2))
        log_ratio = k * (om_x0 - one_m_w) + (m - 1) * (torch.log(om_x0 + x0p * one_m_w) - ln)
        accept = torch.log(torch.rand_like(e)) <= log_ratio
        # the first accepted proposal of each row (argmax returns the first maximal index)
        first = accept.to(torch.uint8).argmax(-1, keepdim=True)
        got = accept.gather(-1, first).squeeze(-1)
        e_first = e.gather(-1, first).squeeze(-1)
        w_first = 1 - one_m_w.gather(-1, first).squeeze(-1)
        if pending is None:
            if bool(got.all()):
                return w_first, e_first
            w.copy_(w_first)
            eps.copy_(e_first)
            pending = torch.arange(n, device=w.device)
        else:
            done = pending[got]
            w[done] = w_first[got]
            eps[done] = e_first[got]
        pending = pending[~got]
        if pending.numel() == 0:
            return w, eps


def _beta_from_gammas(g):
    """Beta(alpha, alpha) draws from Gamma(alpha) pairs g (..., 2): g0 / (g0 + g1), clamped as
    torch's Dirichlet sampler clamps. torch.distributions.Beta(alpha, alpha).sample draws the first
    coordinate of a Dirichlet(alpha, alpha) draw, which torch computes from the same gamma draws
    in the same order: this gives the same numbers and leaves the generator in the same state,
    without the Dirichlet's extra allocations and normalisation pass."""
    g0, g1 = g.unbind(-1)
    return (g0 / (g0 + g1)).clamp_(torch.finfo(g.dtype).tiny, 1 - torch.finfo(g.dtype).eps / 2)


@cache
def _beta_concentration(m, dtype, device):
    """(alpha, alpha), alpha = (m - 1) / 2: the gamma shapes of Wood's Beta proposal."""
    return torch.full((2,), 0.5 * (m - 1), dtype=dtype, device=device)


@cache
def _gauss_legendre(n, device):
    """Gauss-Legendre nodes and weights on [-1, 1] (Golub-Welsch), float64."""
    k = torch.arange(1, n, dtype=torch.float64)
    off = k / torch.sqrt(4 * k * k - 1)
    nodes, vecs = torch.linalg.eigh(torch.diag(off, 1) + torch.diag(off, -1))
    return nodes.to(device), (2 * vecs[0] ** 2).to(device)


def _quadrature_nodes(m, dtype=torch.float64):
    """Gauss-Legendre nodes for dw/dkappa; the density of theta narrows like 1/sqrt(m).  Measured
    against 160 nodes at 4000 draws, kappa in [0.1, 3e4], m = 4 ... 513: 32 + 2 ceil(sqrt m) nodes
    give <= 1e-12 relative error, for float64 parameters; 18 + 2 ceil(sqrt m) give <= 3e-8 (below
    float32 resolution) at 60% of the cost, for float32 parameters."""
    return (32 if dtype == torch.float64 else 18) + 2 * math.ceil(math.sqrt(m))


def _dw_dkappa(w, eps, kappa, m, mean=None, dtype=torch.float64):
    """Implicit gradient dw/dkappa = int_w^1 (t - A) p(t) dt / p(w), A = E[w] = A_m(kappa).

    The integral is taken over the side of w away from A, where the integrand has one sign (the
    two sides agree since int (t - A) p = 0), in the variable theta with eps = sin^2 theta and
    t = (1 - (1+b) eps) / (1 - (1-b) eps).  Wood's map keeps the density of eps close to
    Beta((m-1)/2, (m-1)/2) for every kappa and sin^2 removes its endpoint singularities, so fixed
    Gauss-Legendre nodes resolve it uniformly in kappa (checked against high-precision quadrature;
    only samples with tail probability below ~1e-20 lose accuracy).  `mean` is A_m(kappa) when the
    caller already has it (float64, as bessel_ratio(m / 2, kappa) gives it).
    """
    nu = 0.5 * (m - 3)
    b = _wood_b(kappa, m)
    if mean is None:
        mean = _log_iv_and_ratio_values(0.5 * m - 1, kappa)[1]
    theta_w = torch.atan2(torch.sqrt(eps), torch.sqrt(1 - eps))
    upper = w >= mean  # t in [w, 1] is theta in [0, theta_w]; t in [-1, w] is [theta_w, pi/2]
    lo = torch.where(upper, 0.0, theta_w)
    half = 0.5 * (torch.where(upper, theta_w, 0.5 * math.pi) - lo)
    nodes, weights = _gauss_legendre(_quadrature_nodes(m, dtype), kappa.device)
    theta = torch.addcmul(lo.unsqueeze(-1), half.unsqueeze(-1), 1 + nodes)
    sin, cos = torch.sin(theta), torch.cos(theta)
    b_col, kappa_col = b.unsqueeze(-1), kappa.unsqueeze(-1)
    b_sin2 = b_col * (sin * sin)
    den = cos * cos + b_sin2  # 1 - (1-b) eps, with 1 - eps = cos^2 exactly
    half_one_m_t = b_sin2 / den  # (1 - t) / 2
    # log of p(t)/p(w) |dt/dtheta|, using 1 - t^2 = 4b eps (1-eps) / den^2 and
    # |dt/deps| deps/dtheta = 4b sin cos / den^2: the terms constant along each row first,
    # kappa (1 - w) + (nu+1) log 4b - nu log((1 - w)(1 + w)), then the ones varying with theta
    one_m_w = 1 - w
    row = torch.add(kappa * one_m_w, torch.log(4 * b), alpha=nu + 1)
    row = torch.sub(row, torch.log(one_m_w * (1 + w)), alpha=nu).unsqueeze(-1)
    log_integrand = torch.add(row, torch.log(sin * cos), alpha=2 * nu + 1)
    log_integrand = torch.sub(log_integrand, torch.log(den), alpha=2 * nu + 2)
    log_integrand = torch.addcmul(log_integrand, kappa_col, half_one_m_t, value=-2)
    t_minus_mean = torch.sub((1 - mean).unsqueeze(-1), half_one_m_t, alpha=2)  # t - A
    integrand = t_minus_mean * torch.exp(log_integrand)
    # the integral over the side of w away from A, with the sign of that side
    return (integrand @ weights) * torch.where(upper, half, -half)


def _draw_w(kappa, m):
    """(w, eps) for vMF(e1, kappa), no gradient; kappa float64, 1-D.  eps is what the implicit
    gradient needs: the accepted Beta draw of Wood's sampler, or for m = 3 the uniform r of the
    exact inverse CDF F(w) = (e^{kw} - e^{-k}) / (e^k - e^{-k}), r = 1 - F in [0, 1)."""
    return math_for(kappa).draw_w(kappa, m)


def _dw_dkappa_accepted(w, eps, kappa, m):
    """dw/dkappa through the accepted proposal only, eps held fixed (g_rep of Davidson et al.
    2018, what the authors' code differentiates; biased: it omits the acceptance term g_cor).
    w = (1 - (1+b) eps) / (1 - (1-b) eps) gives dw/db = -2 eps (1 - eps) / den^2, and
    b = (m-1) / (2 kappa + s), s = sqrt(4 kappa^2 + (m-1)^2), gives db/dkappa = -2 b / s."""
    b = _wood_b(kappa, m)
    s = torch.hypot(2 * kappa, _constant(m - 1, kappa.dtype, kappa.device))
    den = 1 - (1 - b) * eps
    return 4 * b * eps * (1 - eps) / (s * den * den)


# VonMisesFisher(gradient=...): how rsample differentiates w in kappa
GRADIENTS = ("implicit", "accepted")


def _dw_dkappa_any(w, eps, kappa, m, mean=None, dtype=torch.float64, gradient="implicit"):
    """dw/dkappa for a draw of _draw_w (float64); m = 3 is an exact inverse CDF either way."""
    if gradient == "accepted" and m != 3:
        return _dw_dkappa_accepted(w, eps, kappa, m)
    if m == 3:
        # w = 1 + log1p(r E) / k with E = expm1(-2k), differentiated in closed form
        e = torch.expm1(-2 * kappa)
        return (-2 * eps * (1 + e) / (1 + eps * e) - (w - 1)) / kappa
    return _dw_dkappa(w, eps, kappa, m, mean, dtype)


class _PlaceOnSphere(torch.autograd.Function):
    """z = Q(loc) (w, sqrt(1 - w^2) t) for a drawn cosine w and unit tangent t (see _householder_vector).

    Differentiated by hand, as one graph node instead of the ~40 autograd would record: in loc
    through the Householder map, in kappa through w by the implicit gradient dw/dkappa.  First
    derivatives only (a second backward raises), as for _Entropy and _LogNormalizer.
    """

    @staticmethod
    def forward(ctx, math, loc, kappa, w, eps, tangent, m, mean, gradient):
        # loc (N, m); kappa (N,) in any float dtype; w, eps, mean float64 (N,); tangent (N, m - 1)
        ctx.m, ctx.math, ctx.gradient = m, math, gradient
        return math.place(ctx, loc, kappa, w, eps, tangent, m, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return (None, *ctx.math.place_backward(ctx, grad), None, None, None, None, None, None)


def _z0(w, tangent, dtype):
    """(sqrt(1 - w^2), the draw for loc = e1: (w, sqrt(1 - w^2) t)) from float64 w (N,) and t (N, m - 1)."""
    radius = torch.sqrt(torch.clamp((1 - w) * (1 + w), min=torch.finfo(w.dtype).tiny))
    z0 = torch.cat([w.to(dtype).unsqueeze(-1), radius.to(dtype).unsqueeze(-1) * tangent], dim=-1)
    return radius, z0


def _place_on_sphere(loc, kappa, w, eps, tangent, mean=None, gradient="implicit"):
    """The differentiable part of a vMF draw: loc (..., m) and kappa (...) with the draws of
    _draw_w and _unit_tangent for them, flattened to (N,) and (N, m - 1); mean as in _dw_dkappa."""
    m = loc.shape[-1]
    z = _PlaceOnSphere.apply(math_for(loc), _flat(loc, (-1, m)), _flat(kappa, (-1,)), w, eps, tangent, m, mean,
                             gradient)
    return _flat(z, loc.shape)


def _flat(t, shape):
    # reshape, but t itself when it already has that shape: each reshape or expand in the graph is
    # one more backward node, which costs microseconds per training step
    if len(shape) == t.dim() and all(s in (-1, n) for s, n in zip(shape, t.shape)):
        return t
    return t.reshape(shape)


def _expand(t, shape):
    return t if t.shape == shape else t.expand(shape)


def _place_on_sphere_no_grad(loc, w, tangent, sample_shape):
    """_place_on_sphere's value without a graph, for draws of shape sample_shape + loc.shape[:-1]:
    each distinct loc's reflection is built once and broadcast over the samples (evaluation draws
    hundreds of samples per point; building it per sample took a third of the sampling time)."""
    _, z0 = _z0(w, tangent, loc.dtype)
    z0 = z0.view(sample_shape + loc.shape)
    return _reflect(*_householder_vector(loc), z0)[0]


def _unit_tangent(n, m, dtype, device):
    """n uniform unit vectors in R^(m-1): the tangent directions of vMF draws."""
    tangent = torch.randn((n, m - 1), dtype=dtype, device=device)
    return math_for(tangent).normalize_rows(tangent)


class _Entropy(torch.autograd.Function):
    """H(kappa) = -kappa A - log C_m(kappa) from the float64 values (log I_{m/2-1}, A_m) at kappa,
    with dH/dkappa = -kappa A'(kappa) in closed form (A' = 1 - A^2 - (m-1) A / kappa)."""

    @staticmethod
    def forward(ctx, kappa, log_iv, ratio, m):
        ctx.m, ctx.math = m, math_for(kappa)
        return ctx.math.entropy(ctx, kappa, log_iv, ratio, m)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return ctx.math.entropy_backward(ctx, grad), None, None, None


class _LogNormalizer(torch.autograd.Function):
    """log C_m(kappa) from the float64 values at kappa, with d/dkappa log C_m = -A_m(kappa)."""

    @staticmethod
    def forward(ctx, kappa, log_iv, ratio, m):
        k = kappa.detach().to(torch.float64)
        ctx.save_for_backward(ratio)
        return _log_normalizer_value(k, log_iv, m).to(kappa.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (a,) = ctx.saved_tensors
        return -(grad * a).to(grad.dtype), None, None, None


def _log_normalizer_value(kappa, log_iv, m):
    """log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log 2 pi - log I_{m/2-1}(kappa)."""
    return (0.5 * m - 1) * torch.log(kappa) - 0.5 * m * math.log(2 * math.pi) - log_iv


class _Torch:
    """The per-row vMF maths as torch operations: the definition, and the path of every device."""

    @staticmethod
    def bessel_values(v, kappa):
        return _log_iv_and_ratio_values(v, kappa)

    @staticmethod
    def draw_w(kappa, m):
        if m == 3:
            r = torch.rand_like(kappa)
            return 1 + torch.log1p(r * torch.expm1(-2 * kappa)) / kappa, r
        return _sample_w_wood(kappa, m)

    normalize_rows = staticmethod(unit_rows)

    @staticmethod
    def place(ctx, loc, kappa, w, eps, tangent, m, mean):
        radius, z0 = _z0(w, tangent, loc.dtype)
        s, u, uu = _householder_vector(loc)
        z, proj = _reflect(s, u, uu, z0)
        ctx.save_for_backward(kappa, w, eps, tangent, radius, mean, z0, s, u, uu, proj)
        return z

    @staticmethod
    def place_backward(ctx, grad):
        kappa, w, eps, tangent, radius, mean, z0, s, u, uu, proj = ctx.saved_tensors
        u_grad = (u * grad).sum(-1, keepdim=True) / uu
        grad_loc = grad_kappa = None
        if ctx.needs_input_grad[1]:
            # z = s f(u), f(u) = z0 - 2 u (u.z0) / (u.u), u = e1 - s loc, s = +-1: grad_loc = -J_f^T g
            grad_loc = 2 * (u_grad * z0 + proj * grad - 2 * (proj * u_grad) * u)
        if ctx.needs_input_grad[2]:
            grad_z0 = s * torch.addcmul(grad, u_grad, u, value=-2)  # Q^T g, Q symmetric
            # z0 = (w, r t) with dr/dw = -w / r (0 where r was clamped, as autograd of clamp gives)
            tangential = (grad_z0[:, 1:] * tangent).sum(-1).to(torch.float64)
            clamped = radius <= torch.finfo(radius.dtype).tiny
            dr_dw = torch.where(clamped, 0.0, -w / radius)
            grad_w = torch.addcmul(grad_z0[:, 0].to(torch.float64), tangential, dr_dw)
            dw = _dw_dkappa_any(w, eps, kappa.to(torch.float64), ctx.m, mean, kappa.dtype, ctx.gradient)
            grad_kappa = (grad_w * dw).to(kappa.dtype)
        return grad_loc, grad_kappa

    @staticmethod
    def entropy(ctx, kappa, log_iv, ratio, m):
        k = kappa.detach().to(torch.float64)
        ctx.save_for_backward(k, ratio)
        return (-k * ratio - _log_normalizer_value(k, log_iv, m)).to(kappa.dtype)

    @staticmethod
    def entropy_backward(ctx, grad):
        k, a = ctx.saved_tensors
        slope = (ctx.m - 1) * a - k * (1 - a * a)  # dH/dkappa = -kappa A'
        return (grad * slope).to(grad.dtype)


class VonMisesFisher(Distribution):
    """vMF(loc, concentration) on S^(m-1): density C_m(kappa) exp(kappa loc^T z).

    loc: (..., m) unit vectors; concentration: (...) positive, broadcast against loc[..., 0].
    gradient: how rsample differentiates in the concentration: "implicit" (exact, Figurnov et al.
    2018) or "accepted" (through the accepted proposal only, as the S-VAE authors' code; biased).
    """

    arg_constraints: ClassVar[dict] = {"loc": sphere, "concentration": constraints.positive}
    support = sphere
    has_rsample = True

    def __init__(self, loc, concentration, validate_args=None, gradient="implicit"):
        if gradient not in GRADIENTS:
            raise ValueError(f"VonMisesFisher: gradient must be one of {GRADIENTS}, got {gradient!r}")
        self.gradient = gradient
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = loc.shape[:-1]
        if concentration.shape != batch_shape:
            batch_shape = torch.broadcast_shapes(batch_shape, concentration.shape)
        self.loc = loc.expand(batch_shape + loc.shape[-1:])
        self.concentration = concentration.expand(batch_shape)
        self._m = loc.shape[-1]
        if self._m < 2:
            raise ValueError("VonMisesFisher needs an ambient dimension m >= 2")
        super().__init__(batch_shape, loc.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        new = self._get_checked_instance(VonMisesFisher, _instance)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        new._m, new.gradient = self._m, self.gradient
        super(VonMisesFisher, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self):
        return self._mean_resultant_length().unsqueeze(-1) * self.loc

    def _bessel_values(self):
        """(log I_{m/2-1}(kappa), A_m(kappa) = I_{m/2}/I_{m/2-1}(kappa)) in float64, no gradient.

        Evaluated once per distribution (rsample, log_prob, entropy and the KL all need them) and
        kept while the concentration tensor is unchanged (checked by identity and version).
        """
        kappa = self.concentration
        cached = getattr(self, "_bessel_cache", None)
        if cached is not None and cached[0] is kappa and cached[1] == kappa._version:
            return cached[2]
        with torch.no_grad():
            k = kappa.detach().to(torch.float64)
            values = math_for(k).bessel_values(0.5 * self._m - 1, k)
        self._bessel_cache = (kappa, kappa._version, values)
        return values

    def _bessel(self):
        """(log I_{m/2-1}(kappa), A_m(kappa)), differentiable in kappa (to any order), in kappa's dtype."""
        kappa = self.concentration
        log_iv, ratio = log_iv_and_ratio(
            0.5 * self._m - 1, kappa.to(torch.float64), self._bessel_values()
        )
        return log_iv.to(kappa.dtype), ratio.to(kappa.dtype)

    def _mean_resultant_length(self):
        return self._bessel()[1]

    def _log_normalizer(self):
        """log C_m(kappa), differentiable in kappa (once: the training path)."""
        return _LogNormalizer.apply(self.concentration, *self._bessel_values(), self._m)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._log_normalizer() + self.concentration * (self.loc * value).sum(-1)

    def entropy(self):
        return _Entropy.apply(self.concentration, *self._bessel_values(), self._m)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        kappa = _expand(self.concentration, shape[:-1])
        with torch.no_grad():
            flat = kappa.detach().reshape(-1).to(torch.float64)

            def draw(rows):  # Wood's cosine, then the tangent direction, of these rows
                w, eps = _draw_w(flat[rows], self._m)
                return w, eps, _unit_tangent(w.numel(), self._m, self.loc.dtype, self.loc.device)

            parts = noise.grouped(draw, flat.numel())  # one part unless seeds are stacked
            w, eps, tangent = parts[0] if len(parts) == 1 else (torch.cat(t) for t in zip(*parts))
        if not (torch.is_grad_enabled() and (self.loc.requires_grad or kappa.requires_grad)):
            return _place_on_sphere_no_grad(self.loc, w, tangent, torch.Size(sample_shape))
        mean = _flat(_expand(self._bessel_values()[1], shape[:-1]), (-1,))
        return _place_on_sphere(_expand(self.loc, shape), kappa, w, eps, tangent, mean, self.gradient)


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p, q):
    """KL = kappa A_m(kappa) + log C_m(kappa) + log |S^(m-1)| = log |S^(m-1)| - H(p)."""
    if p.event_shape != q.event_shape:
        raise ValueError("vMF and uniform live on spheres of different dimension")
    return uniform_kl(p)


def uniform_kl(p):
    """KL(p || uniform on p's sphere), what kl_divergence(p, HypersphericalUniform(m)) gives,
    without building the uniform distribution (the S-VAE's KL, every training step)."""
    return _log_sphere_area(p._m) - p.entropy()
