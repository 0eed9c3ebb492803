"""log I_v(x) and I_v/I_{v-1} against scipy (and mpmath where scipy's ive underflows)."""

import mpmath
import numpy as np
import pytest
import torch
from scipy.special import ive

from vaepriors.distributions import bessel_ratio, log_iv

ORDERS = np.array([0, 0.5, 1, 1.5, 2, 5.5, 10, 19.5, 20, 20.5, 63, 64, 64.5, 100, 500, 1000])
ARGS = np.unique(np.concatenate([np.logspace(-6, 5, 45), [1.5, 2.0]]))
V, X = (a.ravel() for a in np.meshgrid(ORDERS, ARGS, indexing="ij"))


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def reference_log_iv(v, x):
    """log I_v(x) from scipy's scaled ive; mpmath where ive underflows to 0 (large v, small x)."""
    with np.errstate(divide="ignore"):
        ref = np.log(ive(v, x)) + x
    for i in np.flatnonzero(~np.isfinite(ref)):
        ref[i] = float(mpmath.log(mpmath.besseli(v[i], x[i])))
    return ref


def relative_error(ours, ref):
    # log I_0(x) ~ x^2/4 -> 0 as x -> 0, where log(ive) + x itself only has ~1e-16 absolute
    # accuracy; below |ref| = 1e-7 the bound becomes an absolute 1e-13
    return np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-7)


def test_log_iv_matches_scipy_on_grid():
    ours = log_iv(torch.tensor(V), torch.tensor(X)).numpy()
    assert np.isfinite(ours).all()
    assert relative_error(ours, reference_log_iv(V, X)).max() < 1e-6


def test_log_iv_small_x_keeps_relative_accuracy():
    x = np.array([1e-6, 1e-4, 1e-2])
    ours = log_iv(0.0, torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours, x**2 / 4 - x**4 / 64 + x**6 / 576, rtol=1e-12)


def test_log_iv_float32_is_finite_and_accurate():
    v32, x32 = torch.tensor(V, dtype=torch.float32), torch.tensor(X, dtype=torch.float32)
    ours = log_iv(v32, x32)
    assert ours.dtype == torch.float32 and torch.isfinite(ours).all()
    ref = reference_log_iv(v32.double().numpy(), x32.double().numpy())
    assert relative_error(ours.double().numpy(), ref).max() < 1e-6


def test_log_iv_broadcasts():
    out = log_iv(torch.tensor([[0.5], [3.0]]), torch.tensor([1.0, 2.0, 3.0]))
    assert out.shape == (2, 3)
    assert log_iv(2.5, torch.tensor(4.0)).shape == ()


def test_log_iv_gradient_is_the_bessel_ratio_formula():
    v = torch.tensor(V)
    x = torch.tensor(X, requires_grad=True)
    log_iv(v, x).sum().backward()
    # d/dx log I_v = I_{v+1}/I_v + v/x, where scipy can form the ratio
    with np.errstate(invalid="ignore"):
        ratio = ive(V + 1, X) / ive(V, X)
    ok = np.isfinite(ratio) & (ratio > 0)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(x.grad.numpy()[ok], ratio[ok] + V[ok] / X[ok], rtol=1e-10)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("v", [0.0, 0.5, 3.0, 19.7, 63.0, 300.0])
def test_gradcheck(v):
    x = torch.tensor([1e-3, 0.7, 2.5, 30.0, 400.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: log_iv(v, t), (x,))
    assert torch.autograd.gradgradcheck(lambda t: log_iv(v, t), (x,))
    if v >= 0.5:
        assert torch.autograd.gradcheck(lambda t: bessel_ratio(v, t), (x,))


def test_bessel_ratio_matches_scipy():
    orders = np.array([0.5, 1, 1.5, 2.5, 5.5, 20, 20.5, 32, 64.5, 500, 1000])
    v, x = (a.ravel() for a in np.meshgrid(orders, ARGS, indexing="ij"))
    ours = bessel_ratio(torch.tensor(v), torch.tensor(x)).numpy()
    assert np.isfinite(ours).all() and (ours > 0).all() and (ours <= 1).all()
    with np.errstate(invalid="ignore"):
        ref = ive(v, x) / ive(v - 1, x)
    ok = np.isfinite(ref) & (ref > 0)
    assert ok.mean() > 0.8
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-10)
    # where scipy underflows (0/0), ask mpmath
    for i in np.flatnonzero(~ok):
        ref_i = mpmath.besseli(v[i], x[i]) / mpmath.besseli(v[i] - 1, x[i])
        assert ours[i] == pytest.approx(float(ref_i), rel=1e-12)


def test_bessel_ratio_closed_forms():
    x = torch.logspace(-6, 5, 50, dtype=torch.float64)
    torch.testing.assert_close(bessel_ratio(0.5, x), torch.tanh(x), rtol=1e-14, atol=0)
    # m = 3: A_3(k) = coth k - 1/k; use a series where that difference cancels
    exact = torch.where(x < 1e-2, x / 3 - x**3 / 45 + 2 * x**5 / 945, 1 / torch.tanh(x) - 1 / x)
    torch.testing.assert_close(bessel_ratio(1.5, x), exact, rtol=1e-12, atol=0)


def test_high_order_small_argument_regression():
    """m = 128, kappa = 1.5: scipy's ive underflows to 0 in float32 and A_m = 0/0 = NaN."""
    kappa = torch.tensor([1.5, 2.0], dtype=torch.float32, requires_grad=True)
    lv = log_iv(63.0, kappa)
    ratio = bessel_ratio(64.0, kappa)
    (lv.sum() + ratio.sum()).backward()
    assert torch.isfinite(lv).all() and torch.isfinite(ratio).all()
    assert torch.isfinite(kappa.grad).all()
    k64 = np.array([1.5, 2.0])
    np.testing.assert_allclose(
        lv.detach().double().numpy(), np.log(ive(63.0, k64)) + k64, rtol=1e-6
    )
    np.testing.assert_allclose(
        ratio.detach().double().numpy(), ive(64.0, k64) / ive(63.0, k64), rtol=1e-6
    )
