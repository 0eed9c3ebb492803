"""von Mises-Fisher and uniform-sphere distributions: densities, sampling, KL and gradients.

Gradient references use only scipy: the moments of w = mu^T z come from 1-D quadrature of its
density, proportional to exp(kappa w) (1 - w^2)^((m-3)/2), and E[f(z)] for the test function
f(z) = (a^T z)^2 + b^T z follows in closed form from them, since z = w mu + sqrt(1 - w^2) v with
v uniform on the directions orthogonal to mu.
"""

import math
import time

import numpy as np
import pytest
import scipy.stats
import torch
from scipy.integrate import quad
from scipy.special import gammaln, ive
from torch.distributions import kl_divergence

from vaepriors import kernels
from vaepriors.distributions import HypersphericalUniform, VonMisesFisher, bessel_ratio, vmf
from vaepriors.distributions.bessel import _log_iv_and_ratio_values, log_iv_and_ratio
from vaepriors.distributions.vmf import (
    _draw_w,
    _dw_dkappa,
    _dw_dkappa_any,
    _place_on_sphere,
    _sample_w_wood,
    _unit_tangent,
    _wood_b,
)
from vaepriors.kernels import vmf as compiled_vmf
from vaepriors.models.spherical import direction_and_concentration

DIMS = [3, 5, 11, 41, 129]
KAPPAS = [0.1, 1.0, 10.0, 100.0, 1e3, 1e4]


def random_unit(*shape, dtype=torch.float64):
    z = torch.randn(*shape, dtype=dtype)
    return z / z.norm(dim=-1, keepdim=True)


def w_moments(m, kappa):
    """E[w], E[w^2] by quadrature in s = 1 - w (density exp(-kappa s) (s (2 - s))^((m-3)/2))."""
    nu = 0.5 * (m - 3)
    scale = min(2.0, (m + 10) / kappa)

    def integral(power):
        f = lambda s: (1 - s) ** power * math.exp(-kappa * s + nu * math.log(s * (2 - s)))
        parts = [(0, scale)] + ([(scale, 2)] if scale < 2 else [])
        return sum(quad(f, lo, hi, epsabs=0, epsrel=1e-13, limit=200)[0] for lo, hi in parts)

    z = integral(0)
    return integral(1) / z, integral(2) / z


def expected_f(a, b, mu, m1, m2, m):
    """E[(a^T z)^2 + b^T z] under vMF(mu, kappa) given the moments m1, m2 of w."""
    a_mu = a @ mu
    return a_mu**2 * m2 + (a @ a - a_mu**2) * (1 - m2) / (m - 1) + m1 * (b @ mu)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(1234)


@pytest.mark.parametrize("m", DIMS)
def test_log_prob_matches_scipy(m):
    mu = random_unit(m)
    for kappa in KAPPAS:
        q = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64))
        z = torch.cat([random_unit(20, m), q.sample((20,))])
        ref = scipy.stats.vonmises_fisher(mu.numpy(), kappa).logpdf(z.numpy())
        np.testing.assert_allclose(q.log_prob(z).numpy(), ref, rtol=1e-9, atol=1e-8)
        entropy = scipy.stats.vonmises_fisher(mu.numpy(), kappa).entropy()
        assert q.entropy().item() == pytest.approx(entropy, rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("m", DIMS)
def test_mean_resultant_length_and_mean(m):
    n = 100_000
    for kappa in KAPPAS:
        mu = random_unit(m, dtype=torch.float32)
        z = VonMisesFisher(mu, torch.tensor(kappa)).sample((n,)).double()
        assert (z.norm(dim=-1) - 1).abs().max() < 1e-5
        w = z @ mu.double()
        a_m = ive(m / 2, kappa) / ive(m / 2 - 1, kappa)
        assert abs(w.mean().item() - a_m) < 5 * w.std().item() / math.sqrt(n)
        # the whole mean vector, so the tangent part must be isotropic too
        err = (z.mean(0) - a_m * mu.double()).abs()
        assert (err < 5 * z.std(0) / math.sqrt(n) + 1e-7).all()


def test_samples_on_sphere_float64_and_shapes():
    loc = random_unit(4, 7)
    q = VonMisesFisher(loc, torch.tensor([0.5, 5.0, 500.0, 5e4], dtype=torch.float64))
    z = q.rsample((3, 2))
    assert z.shape == (3, 2, 4, 7) and z.dtype == torch.float64
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3, 2, 4, dtype=torch.float64))
    assert q.log_prob(z).shape == (3, 2, 4)
    assert q.mean.shape == (4, 7) and q.entropy().shape == (4,)
    assert q.expand((5, 4)).log_prob(z[0, 0]).shape == (5, 4)
    with pytest.raises(ValueError):
        VonMisesFisher(2 * loc, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("m,kappa", [(3, 2.0), (11, 30.0), (129, 1.5)])
def test_kl_to_uniform(m, kappa):
    q = VonMisesFisher(random_unit(m), torch.tensor(kappa, dtype=torch.float64))
    p = HypersphericalUniform(m, dtype=torch.float64)
    kl = kl_divergence(q, p).item()
    entropy = scipy.stats.vonmises_fisher(q.loc.numpy(), kappa).entropy()
    assert kl == pytest.approx(-gammaln(m / 2) + math.log(2) + m / 2 * math.log(math.pi) - entropy)
    z = q.sample((20_000,))
    diff = q.log_prob(z) - p.log_prob(z)
    assert abs(diff.mean().item() - kl) < 5 * diff.std().item() / math.sqrt(len(z)) + 1e-12


@pytest.mark.parametrize("m", [2, 3, 10, 129])
def test_uniform_on_sphere(m):
    p = HypersphericalUniform(m, dtype=torch.float64)
    area = math.exp(math.log(2) + m / 2 * math.log(math.pi) - gammaln(m / 2))
    z = p.sample((50_000,))
    torch.testing.assert_close(p.log_prob(z), torch.full((50_000,), -math.log(area), dtype=z.dtype))
    assert p.entropy().item() == pytest.approx(math.log(area))
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(50_000, dtype=z.dtype))
    assert (z.mean(0).abs() < 5 / math.sqrt(m * 50_000)).all()


def implicit_reference(w, kappa, m):
    """int_w^1 (t - A) p(t) dt / p(w) by quadrature in u, t = 1 - u^2 (smooth at t = 1)."""
    nu = 0.5 * (m - 3)
    a_m = ive(m / 2, kappa) / ive(m / 2 - 1, kappa)
    log_p_w = nu * math.log((1 - w) * (1 + w))

    def f(u):
        log_ratio = kappa * ((1 - w) - u * u) + nu * math.log(u * u * (2 - u * u)) - log_p_w
        return (1 - u * u - a_m) * math.exp(log_ratio) * 2 * u

    top = math.sqrt(1 - w)
    peak = min(top, math.sqrt((m + 10) / kappa))
    parts = [(0, peak)] + ([(peak, top)] if peak < top else [])
    return sum(quad(f, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0] for lo, hi in parts)


@pytest.mark.parametrize("m", [4, 10, 41, 129])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_implicit_dw_dkappa_matches_quadrature(m, dtype):
    """dw/dkappa = -(dF/dkappa)(w) / p(w), checked at drawn samples, with the quadrature sized for
    float64 parameters (to 1e-9) and for float32 ones (fewer nodes, to float32 resolution); the
    torch form and the compiled one (kernels/vmf.py, a different arrangement of the same integrand)."""
    nodes = compiled_vmf._gauss_legendre(vmf._quadrature_nodes(m, dtype))
    for kappa in [0.5, 50.0, 1e4]:
        k = torch.full((4,), kappa, dtype=torch.float64)
        w, eps = _sample_w_wood(k, m)
        ours = _dw_dkappa(w, eps, k, m, dtype=dtype)
        mean = bessel_ratio(0.5 * m, k).numpy()
        compiled = compiled_vmf.dw_dkappa(w.numpy(), eps.numpy(), k.numpy(), m, mean, *nodes)
        for w_i, ours_i, compiled_i in zip(w.tolist(), ours.tolist(), compiled, strict=True):
            rel = 1e-9 if dtype == torch.float64 else 1e-7
            reference = implicit_reference(w_i, kappa, m)
            assert ours_i == pytest.approx(reference, rel=rel)
            assert compiled_i == pytest.approx(reference, rel=rel)


def per_sample_gradients(m, kappa, n, mu0, a, b):
    """Per-sample gradients of f(z) in kappa and in an unnormalised eta, mu = eta / |eta|."""
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    eta = (2 * mu0).expand(n, m).clone().requires_grad_(True)
    z = VonMisesFisher(eta / eta.norm(dim=-1, keepdim=True), k).rsample()
    ((z @ a) ** 2 + z @ b).sum().backward()
    return k.grad, eta.grad


@pytest.mark.parametrize("m,kappa", [(3, 0.7), (3, 20.0), (5, 3.0), (10, 0.5), (10, 40.0)])
def test_reparameterisation_gradient_is_unbiased(m, kappa):
    n = 100_000
    mu0 = random_unit(m)
    a, b = torch.randn(2, m, dtype=torch.float64)
    g_kappa, g_eta = per_sample_gradients(m, kappa, n, mu0, a, b)

    h = 1e-3 * kappa
    plus, minus = w_moments(m, kappa + h), w_moments(m, kappa - h)
    ref_kappa = (expected_f(a, b, mu0, *plus, m) - expected_f(a, b, mu0, *minus, m)) / (2 * h)
    se = g_kappa.std() / math.sqrt(n)
    assert abs(g_kappa.mean() - ref_kappa) < 5 * se

    eta = (2 * mu0).clone().requires_grad_(True)
    expected_f(a, b, eta / eta.norm(), *w_moments(m, kappa), m).backward()
    se = g_eta.std(0) / math.sqrt(n)
    assert ((g_eta.mean(0) - eta.grad).abs() < 5 * se).all()


def test_naive_gradient_through_accepted_proposal_is_biased():
    """Dropping Davidson et al.'s correction term is detectably biased; the implicit one is not."""
    m, kappa, n = 5, 3.0, 50_000
    m1_plus, _ = w_moments(m, kappa + 1e-3)
    m1_minus, _ = w_moments(m, kappa - 1e-3)
    ref = (m1_plus - m1_minus) / 2e-3  # d E[w] / d kappa

    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    _, eps = _sample_w_wood(k.detach(), m)
    b = _wood_b(k, m)
    ((1 - (1 + b) * eps) / (1 - (1 - b) * eps)).sum().backward()
    naive = k.grad
    assert abs(naive.mean() - ref) > 20 * naive.std() / math.sqrt(n)

    mu = torch.zeros(n, m, dtype=torch.float64)
    mu[:, 0] = 1
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    VonMisesFisher(mu, k).rsample()[:, 0].sum().backward()
    assert abs(k.grad.mean() - ref) < 5 * k.grad.std() / math.sqrt(n)


@pytest.mark.parametrize("first", [1.0, -1.0])
def test_location_on_the_axis(first):
    """loc = +-e1, where the textbook Householder vector e1 - loc vanishes."""
    loc = torch.zeros(8, 6, dtype=torch.float64)
    loc[:, 0] = first
    eta = loc.clone().requires_grad_(True)
    q = VonMisesFisher(
        eta / eta.norm(dim=-1, keepdim=True), torch.full((8,), 10.0, dtype=torch.float64)
    )
    z = q.rsample((500,))
    (z * torch.arange(6.0, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(eta.grad).all()
    assert (
        (z[..., 0] * first).mean() - bessel_ratio(3.0, torch.tensor(10.0, dtype=torch.float64))
    ).abs() < 0.01


def test_training_scale_smoke():
    m, batch = 129, 256
    eta = torch.randn(batch, m, requires_grad=True)
    log_kappa = torch.linspace(0, math.log(1e4), batch).requires_grad_(True)
    q = VonMisesFisher(eta / eta.norm(dim=-1, keepdim=True), log_kappa.exp())
    z = q.rsample()
    kl = kl_divergence(q, HypersphericalUniform(m))
    loss = ((z - 0.1) ** 2).sum() + kl.sum()
    loss.backward()
    assert z.dtype == torch.float32 and torch.isfinite(z).all() and torch.isfinite(kl).all()
    assert torch.isfinite(eta.grad).all() and torch.isfinite(log_kappa.grad).all()
    assert (kl >= 0).all()


def test_sampling_is_vectorised():
    q = VonMisesFisher(random_unit(10_000, 11, dtype=torch.float32), torch.full((10_000,), 50.0))
    q.rsample()  # warm-up
    start = time.perf_counter()
    q.rsample()
    assert time.perf_counter() - start < 1.0  # milliseconds in practice; a per-sample loop takes s


def test_deterministic_given_seed():
    def draw():
        torch.manual_seed(7)
        k = torch.tensor([0.5, 20.0, 3e3], dtype=torch.float64, requires_grad=True)
        z = VonMisesFisher(random_unit(3, 9), k).rsample((100,))
        z.sum().backward()
        return z.detach(), k.grad

    (z1, g1), (z2, g2) = draw(), draw()
    assert torch.equal(z1, z2) and torch.equal(g1, g2)


@pytest.mark.parametrize("m", [3, 5, 11])
def test_hand_written_sample_gradient_matches_autograd(m):
    """_PlaceOnSphere's backward against autograd through an explicit reflection matrix, with w
    carrying dw/dkappa (itself checked against quadrature above) as its derivative."""
    n = 40
    eta = torch.randn(n, m, dtype=torch.float64)
    eta[:3, 1:] = 0  # locations on +-e1, where the Householder vector needs its sign switch
    eta[1, 0], eta[2, 0] = 1.0, -1.0
    loc = (eta / eta.norm(dim=-1, keepdim=True)).requires_grad_(True)
    kappa = torch.logspace(-1, 3, n, dtype=torch.float64).requires_grad_(True)
    w, eps = _draw_w(kappa.detach(), m)
    tangent = _unit_tangent(n, m, torch.float64, "cpu")
    upstream = torch.randn(n, m, dtype=torch.float64)
    (_place_on_sphere(loc, kappa, w, eps, tangent) * upstream).sum().backward()
    ours = loc.grad.clone(), kappa.grad.clone()
    loc.grad, kappa.grad = None, None

    dw = _dw_dkappa_any(w, eps, kappa.detach(), m)
    w_lin = w + (kappa - kappa.detach()) * dw
    z0 = torch.cat([w_lin.unsqueeze(-1), torch.sqrt(1 - w_lin**2).unsqueeze(-1) * tangent], -1)
    s = torch.where(loc[:, :1] > 0, -1.0, 1.0).to(torch.float64)
    u = torch.eye(m, dtype=torch.float64)[0] - s * loc
    q = s.unsqueeze(-1) * (torch.eye(m, dtype=torch.float64) - 2 * u.unsqueeze(-1) * u.unsqueeze(-2)
                           / (u * u).sum(-1)[:, None, None])
    ((q @ z0.unsqueeze(-1)).squeeze(-1) * upstream).sum().backward()
    assert torch.allclose(ours[0], loc.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(ours[1], kappa.grad, rtol=1e-10, atol=1e-12)
    # and the loc gradient by finite differences, independently of the formulas above
    assert torch.autograd.gradcheck(
        lambda loc_: _place_on_sphere(loc_, kappa.detach(), w, eps, tangent), (loc.detach().requires_grad_(),)
    )


@pytest.mark.parametrize("m", [3, 6, 11, 41])
@pytest.mark.parametrize("quantity", ["entropy", "log_prob"])
def test_entropy_and_log_prob_gradients(m, quantity):
    """d/dkappa of the entropy and of log C_m, written in closed form, against finite differences
    of the values (recomputed at each perturbed kappa) and against autograd through log I_v."""
    kappa = torch.tensor([0.05, 0.7, 1.9, 2.1, 15.0, 400.0, 3e4], dtype=torch.float64)
    loc, z = random_unit(len(kappa), m), random_unit(len(kappa), m)

    def ours(k):
        q = VonMisesFisher(loc, k)
        return q.entropy() if quantity == "entropy" else q.log_prob(z)

    def reference(k):
        log_iv, ratio = log_iv_and_ratio(0.5 * m - 1, k)
        log_c = (0.5 * m - 1) * torch.log(k) - 0.5 * m * math.log(2 * math.pi) - log_iv
        return -k * ratio - log_c if quantity == "entropy" else log_c + k * (loc * z).sum(-1)

    assert torch.autograd.gradcheck(ours, (kappa.clone().requires_grad_(),))
    grads = []
    for f in (ours, reference):
        k = kappa.clone().requires_grad_(True)
        f(k).sum().backward()
        grads.append(k.grad)
    assert torch.allclose(*grads, rtol=1e-9, atol=1e-12)


def test_second_derivatives_are_refused_not_wrong():
    """The hand-written backward passes are first-order; asking for more raises."""
    k = torch.tensor([2.0, 30.0], dtype=torch.float64, requires_grad=True)
    q = VonMisesFisher(random_unit(2, 5), k)
    for value in (q.entropy().sum(), q.rsample().sum()):
        (g,) = torch.autograd.grad(value, k, create_graph=True)
        with pytest.raises(RuntimeError):
            g.sum().backward()


@pytest.mark.parametrize("m", [3, 5, 11])
def test_draws_without_a_graph_equal_the_differentiable_ones(m, monkeypatch):
    # sample() under no_grad builds each loc's reflection once and broadcasts it over the samples;
    # rsample() with a graph goes through _PlaceOnSphere per row: same draws, same numbers. On the
    # CPU rsample's map runs compiled in float64 (kernels/vmf.py), so there the numbers agree to float32
    # rounding; the torch map (kernels.COMPILED off) is held to the original 1e-7.
    g = torch.Generator().manual_seed(m)
    loc = torch.nn.functional.normalize(torch.randn(7, m, generator=g), dim=-1)
    loc[0] = 0
    loc[0, 0] = -1  # on the axis, where the reflection switches sign
    kappa = torch.rand(7, generator=g) * 30 + 0.1
    for host, atol in [(False, 1e-7), (True, 8 * torch.finfo(torch.float32).eps)]:
        monkeypatch.setattr(kernels, "COMPILED", host)
        torch.manual_seed(1)
        plain = VonMisesFisher(loc, kappa).sample((4, 3))
        torch.manual_seed(1)
        q = VonMisesFisher(loc.clone().requires_grad_(), kappa.clone().requires_grad_())
        traced = q.rsample((4, 3))
        assert plain.shape == traced.shape == (4, 3, 7, m)
        torch.testing.assert_close(plain, traced.detach(), rtol=0, atol=atol)


@pytest.mark.parametrize("m", [2, 3, 5, 11, 41])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_path_matches_the_torch_path(m, dtype, monkeypatch):
    """On the CPU the per-row math runs compiled (kernels/vmf.py); the torch functions are the reference.
    Same seed: the same draws, and z, the KL and their gradients agree to rounding."""
    g = torch.Generator().manual_seed(m)
    eta = torch.randn(50, m, generator=g, dtype=torch.float64)
    eta[:2, 1:] = 0  # on +-e1, where the Householder vector switches sign
    eta[0, 0], eta[1, 0] = 1.0, -1.0
    kappa = torch.logspace(-1, 4, 50, dtype=torch.float64)
    upstream = torch.randn(50, m, generator=g, dtype=torch.float64).to(dtype)

    def run(host):
        monkeypatch.setattr(kernels, "COMPILED", host)
        loc = torch.nn.functional.normalize(eta, dim=-1).to(dtype).requires_grad_()
        k = kappa.to(dtype).requires_grad_()
        torch.manual_seed(3)
        q = VonMisesFisher(loc, k, validate_args=False)
        z = q.rsample()
        kl = kl_divergence(q, HypersphericalUniform(m, dtype=dtype))
        ((z * upstream).sum() + kl.sum()).backward()
        values = q._bessel_values()
        return z.detach(), kl.detach(), loc.grad, k.grad, values

    host, reference = run(True), run(False)
    eps = torch.finfo(dtype).eps
    # ulps of max(|value|, 1): the compiled kernels compute in float64 (the torch path partly in
    # the parameters' dtype) and round in their own order. The KL at kappa = 1e4 is ~10 from
    # terms of ~1e4, so in float64 last-bit differences of the Bessel values reach ~500 ulps.
    kl_ulps = 2e3 if dtype == torch.float64 else 8
    for ours, ref, ulps in zip(host[:4], reference[:4], [8, kl_ulps, 16, 16], strict=True):
        assert ours.dtype == ref.dtype == dtype
        assert ((ours - ref).abs() <= ulps * eps * ref.abs().clamp(min=1)).all()
    for ours, ref in zip(host[4], reference[4], strict=True):  # the Bessel values
        torch.testing.assert_close(ours, ref, rtol=1e-13, atol=1e-15)


def series_log_iv(v, x):
    """log I_v(x) from its power series, summed in log-safe form (fine for x^2 / 4 << v)."""
    term, total, k = 1.0, 1.0, 0
    while term > 1e-18 * total:
        k += 1
        term *= x * x / 4 / (k * (v + k))
        total += term
    return v * math.log(x / 2) - math.lgamma(v + 1) + math.log(total)


@pytest.mark.parametrize("v", [0.0, 0.5, 1.5, 4.5, 19.5, 20.0, 63.0, 199.5])
def test_compiled_bessel_values_match_bessel_py(v):
    """kernels/vmf.py's compiled log I_v and I_{v+1}/I_v against bessel.py's torch evaluation (the
    same algorithm) over x from 1e-4 to 1e5, both branches, and log I_v against an independent
    reference: scipy's ive where it neither under- nor overflows, the power series elsewhere."""
    x = np.logspace(-4, 5, 400)
    log_iv, ratio = compiled_vmf.bessel_values(v, x)
    ref_log, ref_ratio = _log_iv_and_ratio_values(v, torch.from_numpy(x))
    np.testing.assert_allclose(log_iv, ref_log.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ratio, ref_ratio.numpy(), rtol=1e-13, atol=1e-300)
    scaled = ive(v, x)
    usable = (scaled > 1e-290) & np.isfinite(scaled)
    np.testing.assert_allclose(log_iv[usable], np.log(scaled[usable]) + x[usable], rtol=1e-12, atol=1e-13)
    small = x < 1.0
    series = [series_log_iv(v, xi) for xi in x[small]]
    np.testing.assert_allclose(log_iv[small], series, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compiled_head_matches_normalize_and_softplus(dtype, monkeypatch):
    """direction_and_concentration on the CPU (one compiled Function) against F.normalize and
    F.softplus + 1, values and gradients, including a zero direction (normalize's clamped norm)
    and concentrations past softplus's threshold; gradcheck in float64."""
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3, 9, 6, generator=g, dtype=torch.float64) * 3
    raw[0, 0, :-1] = 0
    raw[0, 1, -1], raw[0, 2, -1] = 25.0, -30.0
    upstream = torch.randn(3, 9, 5, generator=g, dtype=torch.float64).to(dtype)
    weights = torch.randn(3, 9, generator=g, dtype=torch.float64).to(dtype)

    def run(host):
        monkeypatch.setattr(kernels, "COMPILED", host)
        r = raw.to(dtype).requires_grad_()
        loc, kappa = direction_and_concentration(r)
        ((loc * upstream).sum() + (kappa * weights).sum()).backward()
        return loc.detach(), kappa.detach(), r.grad

    host, reference = run(True), run(False)
    for ours, ref in zip(host, reference, strict=True):
        assert ours.dtype == ref.dtype == dtype and ours.shape == ref.shape
        torch.testing.assert_close(ours, ref, rtol=4 * torch.finfo(dtype).eps, atol=4 * torch.finfo(dtype).eps)
    if dtype == torch.float64:
        monkeypatch.setattr(kernels, "COMPILED", True)
        assert torch.autograd.gradcheck(
            lambda r: direction_and_concentration(r), (raw[1:].clone().requires_grad_(),)
        )


@pytest.mark.parametrize("m", [2, 4, 10, 513])
def test_beta_proposals_from_gammas_are_torchs_beta_draws(m):
    """Wood's Beta((m-1)/2, (m-1)/2) proposals come from gamma pairs: the same numbers as
    torch.distributions.Beta draws under the same seed, and the generator left in the same state."""
    alpha = torch.tensor(0.5 * (m - 1), dtype=torch.float64)
    torch.manual_seed(m)
    expected = torch.distributions.Beta(alpha, alpha).sample((300, 3))
    after_beta = torch.rand(4)
    torch.manual_seed(m)
    ours = vmf._beta_from_gammas(torch._standard_gamma(alpha.expand(300, 3, 2)))
    assert torch.equal(ours, expected)
    assert torch.equal(torch.rand(4), after_beta)


def test_compiled_sin_log_exp_match_libm():
    """The polynomial sin, log and exp of the compiled dw/dkappa quadrature against libm (math),
    over the ranges it uses them on: sin to 1 ulp of sin x on [0, pi/4]; log to 1 ulp of its value
    (2 ulps of 1 near y = 1, where log y -> 0) on normal floats; exp to 2 ulps on [-708, 709],
    and 0 below -708."""
    rng = np.random.default_rng(0)
    eps = np.finfo(np.float64).eps
    for x in np.concatenate([rng.uniform(0, math.pi / 4, 3000), [0.0, 1e-300, 1e-8, math.pi / 4]]):
        assert abs(compiled_vmf._sin_to_quarter_pi(x) - math.sin(x)) <= eps * math.sin(x)
    ys = np.concatenate([np.exp(rng.uniform(-700, 700, 3000)), 1 + rng.uniform(-1e-3, 1e-3, 500),
                         [np.finfo(np.float64).tiny, 0.5, 1.0, 2.0, math.sqrt(2), 1e300]])
    for y in ys:
        assert abs(compiled_vmf._log_normal(y) - math.log(y)) <= eps * max(abs(math.log(y)), 2.0)
    for x in np.concatenate([rng.uniform(-708, 709, 3000), rng.uniform(-1, 1, 500), [0.0, -708.0]]):
        assert abs(compiled_vmf._exp_or_zero(x) - math.exp(x)) <= 2 * eps * math.exp(x)
    assert compiled_vmf._exp_or_zero(-708.5) == 0.0 and compiled_vmf._exp_or_zero(-1e4) == 0.0


@pytest.mark.parametrize("host", [True, False])
@pytest.mark.parametrize("m", [3, 6, 41])
def test_accepted_proposal_gradient_is_autograd_through_woods_map(m, host, monkeypatch):
    """gradient="accepted" (the S-VAE authors' code, g_rep without g_cor) equals autograd through
    w = (1 - (1+b) eps) / (1 - (1-b) eps) with the accepted Beta draw eps held fixed, on the same
    draws; it differs from the exact implicit gradient except at m = 3 (an exact inverse CDF)."""
    monkeypatch.setattr(kernels, "COMPILED", host)
    n = 400
    kappa = torch.logspace(-0.5, 3, n, dtype=torch.float64)
    loc = torch.zeros(n, m, dtype=torch.float64)
    loc[:, 0] = 1
    upstream = torch.randn(n, m, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def grad(gradient):
        k = kappa.clone().requires_grad_()
        torch.manual_seed(5)
        z = VonMisesFisher(loc, k, validate_args=False, gradient=gradient).rsample()
        (z * upstream).sum().backward()
        return z.detach(), k.grad

    z_acc, g_acc = grad("accepted")
    z_imp, g_imp = grad("implicit")
    assert torch.equal(z_acc, z_imp)  # the same draws: only the backward differs
    if m == 3:
        torch.testing.assert_close(g_acc, g_imp, rtol=1e-12, atol=1e-12)
        return
    # the reference: draw (w, eps) exactly as rsample does, then autograd through Wood's map
    torch.manual_seed(5)
    w, eps = _draw_w(kappa, m)
    tangent = _unit_tangent(n, m, torch.float64, "cpu")
    k = kappa.clone().requires_grad_()
    b = _wood_b(k, m)
    w_map = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
    torch.testing.assert_close(w_map.detach(), w, rtol=1e-9, atol=1e-12)
    radius = torch.sqrt((1 - w_map) * (1 + w_map))
    # loc = e1: the Householder map keeps w and flips the tangent part (z = (w, -r t))
    z_ref = torch.cat([w_map.unsqueeze(-1), -radius.unsqueeze(-1) * tangent], -1)
    torch.testing.assert_close(z_ref.detach(), z_acc, rtol=1e-9, atol=1e-12)
    (z_ref * upstream).sum().backward()
    torch.testing.assert_close(g_acc, k.grad, rtol=1e-8, atol=1e-10)
    assert not torch.allclose(g_acc, g_imp, rtol=1e-3)


def test_unknown_gradient_is_refused():
    with pytest.raises(ValueError, match="gradient"):
        VonMisesFisher(torch.tensor([1.0, 0.0, 0.0]), torch.tensor(2.0), gradient="naive")
