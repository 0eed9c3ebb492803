"""von Mises-Fisher distribution on S^(m-1) in R^m and the uniform distribution on the sphere.

Sampling follows Wood (1994): the cosine w = mu^T z is drawn (exactly by inverse CDF for m = 3,
otherwise by rejection from a transformed Beta((m-1)/2, (m-1)/2)); the tangent part is a
normalised Gaussian orthogonal to e1, and a Householder reflection maps e1 to mu.

Gradients.  Differentiating through the accepted Beta proposal (what widely used S-VAE code does)
ignores that the acceptance probability depends on kappa, and is biased in kappa unless the
score-function correction g_cor of Davidson et al. (2018) is added to the loss, which an rsample()
cannot do and which adds variance.  We use implicit reparameterisation instead (Figurnov et al.
2018): for the CDF F(w; kappa) of w, dw/dkappa = -(dF/dkappa)(w) / p(w), which is exact (so the
pathwise gradient is unbiased) and needs no change to the loss.  For m = 3 the inverse CDF is in
closed form and autograd through it gives the same thing.  The gradient in mu is pathwise through
the reflection, which is exact because z0 does not depend on mu.
"""

import math
from functools import cache
from typing import ClassVar

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.kl import register_kl

from .bessel import bessel_ratio, log_iv

__all__ = ["HypersphericalUniform", "VonMisesFisher"]


class _Sphere(constraints.Constraint):
    """Unit vectors along the last dimension (tolerance suited to the dtype)."""

    event_dim = 1

    def check(self, value):
        tol = 10 * torch.finfo(value.dtype).eps ** 0.5
        return (torch.linalg.vector_norm(value, dim=-1) - 1).abs() < tol


sphere = _Sphere()


def _log_sphere_area(m):
    """log |S^(m-1)| = log(2 pi^(m/2) / Gamma(m/2))."""
    return math.log(2) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def _wood_b(kappa, m):
    # Wood's b = (-2k + sqrt(4k^2 + (m-1)^2)) / (m-1), rewritten without the cancellation at large k
    return (m - 1) / (2 * kappa + torch.sqrt(4 * kappa**2 + (m - 1) ** 2))


def _sample_w_wood(kappa, m):
    """Wood's rejection sampler for w = mu^T z, m >= 2; kappa is a 1-D float64 tensor.

    Returns (w, eps), eps being the accepted Beta draw: w = (1 - (1+b) eps) / (1 - (1-b) eps).
    Every row still pending proposes again together, so the loop runs over rounds, not samples.
    All the near-1 quantities (1 - w, 1 - x0, w - x0) are formed from b and eps directly, since
    at large kappa w and x0 both round to ~1.
    """
    alpha = torch.tensor(0.5 * (m - 1), dtype=kappa.dtype, device=kappa.device)
    proposal = torch.distributions.Beta(alpha, alpha)
    b = _wood_b(kappa, m)
    one_m_x0 = 2 * b / (1 + b)
    x0 = 1 - one_m_x0
    w = torch.empty_like(kappa)
    eps = torch.empty_like(kappa)
    pending = torch.arange(kappa.numel(), device=kappa.device)
    while pending.numel() > 0:
        bp, k, om_x0, x0p = b[pending], kappa[pending], one_m_x0[pending], x0[pending]
        e = proposal.sample(pending.shape)
        one_m_w = 2 * bp * e / (1 - (1 - bp) * e)
        # log acceptance ratio k (w - x0) + (m-1) log((1 - x0 w) / (1 - x0^2))
        log_ratio = k * (om_x0 - one_m_w) + (m - 1) * torch.log(
            (om_x0 + x0p * one_m_w) / (om_x0 * (1 + x0p))
        )
        accept = torch.log(torch.rand_like(e)) <= log_ratio
        done = pending[accept]
        w[done] = 1 - one_m_w[accept]
        eps[done] = e[accept]
        pending = pending[~accept]
    return w, eps


@cache
def _gauss_legendre(n, device):
    """Gauss-Legendre nodes and weights on [-1, 1] (Golub-Welsch), float64."""
    k = torch.arange(1, n, dtype=torch.float64)
    off = k / torch.sqrt(4 * k * k - 1)
    nodes, vecs = torch.linalg.eigh(torch.diag(off, 1) + torch.diag(off, -1))
    return nodes.to(device), (2 * vecs[0] ** 2).to(device)


def _quadrature_nodes(m):
    # the density of theta narrows like 1/sqrt(m); this gives dw/dkappa to ~1e-10 up to m = 513
    return 32 + 2 * math.ceil(math.sqrt(m))


def _dw_dkappa(w, eps, kappa, m):
    """Implicit gradient dw/dkappa = int_w^1 (t - A) p(t) dt / p(w), A = E[w] = A_m(kappa).

    The integral is taken over the side of w away from A, where the integrand has one sign (the
    two sides agree since int (t - A) p = 0), in the variable theta with eps = sin^2 theta and
    t = (1 - (1+b) eps) / (1 - (1-b) eps).  Wood's map keeps the density of eps close to
    Beta((m-1)/2, (m-1)/2) for every kappa and sin^2 removes its endpoint singularities, so fixed
    Gauss-Legendre nodes resolve it uniformly in kappa (checked against high-precision quadrature;
    only samples with tail probability below ~1e-20 lose accuracy).
    """
    nu = 0.5 * (m - 3)
    b = _wood_b(kappa, m)
    mean = bessel_ratio(0.5 * m, kappa)
    theta_w = torch.atan2(torch.sqrt(eps), torch.sqrt(1 - eps))
    upper = w >= mean  # t in [w, 1] is theta in [0, theta_w]; t in [-1, w] is [theta_w, pi/2]
    lo = torch.where(upper, 0.0, theta_w).unsqueeze(-1)
    half = 0.5 * (torch.where(upper, theta_w, 0.5 * math.pi).unsqueeze(-1) - lo)
    nodes, weights = _gauss_legendre(_quadrature_nodes(m), kappa.device)
    theta = lo + half * (1 + nodes)
    sin, cos = torch.sin(theta), torch.cos(theta)
    b, kappa, w = b.unsqueeze(-1), kappa.unsqueeze(-1), w.unsqueeze(-1)
    den = cos * cos + b * sin * sin  # 1 - (1-b) eps, with 1 - eps = cos^2 exactly
    one_m_t = 2 * b * sin * sin / den
    # log of p(t)/p(w) |dt/dtheta|, using 1 - t^2 = 4b eps (1-eps) / den^2 and
    # |dt/deps| deps/dtheta = 4b sin cos / den^2
    log_integrand = (
        kappa * ((1 - w) - one_m_t)
        + (2 * nu + 1) * torch.log(sin * cos)
        - (2 * nu + 2) * torch.log(den)
        + (nu + 1) * torch.log(4 * b)
        - nu * torch.log((1 - w) * (1 + w))
    )
    integrand = ((1 - mean).unsqueeze(-1) - one_m_t) * torch.exp(log_integrand)
    integral = half.squeeze(-1) * (integrand @ weights)
    return torch.where(upper, integral, -integral)


class _ImplicitW(torch.autograd.Function):
    """Attach the implicit reparameterisation gradient in kappa to a Wood sample w."""

    @staticmethod
    def forward(ctx, kappa, w, eps, m):
        ctx.save_for_backward(kappa, w, eps)
        ctx.m = m
        return w.clone()

    @staticmethod
    def backward(ctx, grad):
        kappa, w, eps = ctx.saved_tensors
        return grad * _dw_dkappa(w, eps, kappa, ctx.m), None, None, None


def _sample_w(kappa, m):
    """Draw w = mu^T z for vMF(e1, kappa) with a reparameterisation gradient; kappa float64, 1-D."""
    if m == 3:
        # exact inverse CDF: F(w) = (e^{kw} - e^{-k}) / (e^k - e^{-k}); r = 1 - F in [0, 1)
        r = torch.rand_like(kappa)
        return 1 + torch.log1p(r * torch.expm1(-2 * kappa)) / kappa
    with torch.no_grad():
        w, eps = _sample_w_wood(kappa.detach(), m)
    return _ImplicitW.apply(kappa, w, eps, m)


def _householder_to(loc, z0):
    """Apply an orthogonal map Q with Q e1 = loc to z0 (both (..., m)).

    Q = s (I - 2 u u^T / u^T u) with u = e1 - s loc and s = -sign(loc_1): then u^T u >= 2, so Q
    is smooth in loc everywhere (the textbook u = e1 - loc degenerates at loc = e1).  Any
    orthogonal Q with Q e1 = loc maps vMF(e1) to vMF(loc), so switching s is harmless.
    """
    s = torch.where(loc[..., :1] > 0, -1.0, 1.0).to(loc.dtype)
    u = -s * loc
    u = torch.cat([u[..., :1] + 1, u[..., 1:]], dim=-1)
    proj = (u * z0).sum(-1, keepdim=True) / (u * u).sum(-1, keepdim=True)
    return s * (z0 - 2 * proj * u)


class VonMisesFisher(Distribution):
    """vMF(loc, concentration) on S^(m-1): density C_m(kappa) exp(kappa loc^T z).

    loc: (..., m) unit vectors; concentration: (...) positive, broadcast against loc[..., 0].
    """

    arg_constraints: ClassVar[dict] = {"loc": sphere, "concentration": constraints.positive}
    support = sphere
    has_rsample = True

    def __init__(self, loc, concentration, validate_args=None):
        concentration = torch.as_tensor(concentration, dtype=loc.dtype, device=loc.device)
        batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
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
        new._m = self._m
        super(VonMisesFisher, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self):
        return self._mean_resultant_length().unsqueeze(-1) * self.loc

    def _mean_resultant_length(self):
        return bessel_ratio(0.5 * self._m, self.concentration)

    def _log_normalizer(self):
        """log C_m(kappa) = (m/2 - 1) log kappa - (m/2) log 2 pi - log I_{m/2-1}(kappa)."""
        m, kappa = self._m, self.concentration
        return (
            (0.5 * m - 1) * torch.log(kappa)
            - 0.5 * m * math.log(2 * math.pi)
            - log_iv(0.5 * m - 1, kappa)
        )

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self._log_normalizer() + self.concentration * (self.loc * value).sum(-1)

    def entropy(self):
        kappa = self.concentration
        return -kappa * self._mean_resultant_length() - self._log_normalizer()

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        kappa = self.concentration.expand(shape[:-1]).reshape(-1)
        w = _sample_w(kappa.to(torch.float64), self._m)
        radius = torch.sqrt(torch.clamp((1 - w) * (1 + w), min=torch.finfo(w.dtype).tiny))
        w, radius = w.to(self.loc.dtype), radius.to(self.loc.dtype)
        tangent = torch.randn(w.shape + (self._m - 1,), dtype=w.dtype, device=w.device)
        tangent = tangent / torch.linalg.vector_norm(tangent, dim=-1, keepdim=True)
        z0 = torch.cat([w.unsqueeze(-1), radius.unsqueeze(-1) * tangent], dim=-1)
        return _householder_to(self.loc.expand(shape), z0.reshape(shape))


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
        return torch.tensor(_log_sphere_area(self.dim), dtype=self.dtype, device=self.device)

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        z = torch.randn(shape, dtype=self.dtype, device=self.device)
        return z / torch.linalg.vector_norm(z, dim=-1, keepdim=True)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return (-self._log_area()).expand(value.shape[:-1])

    def entropy(self):
        return self._log_area()


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p, q):
    """KL = kappa A_m(kappa) + log C_m(kappa) + log |S^(m-1)| = log |S^(m-1)| - H(p)."""
    if p.event_shape != q.event_shape:
        raise ValueError("vMF and uniform live on spheres of different dimension")
    return _log_sphere_area(q.dim) - p.entropy()
