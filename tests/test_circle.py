"""The circle toy (data/circle.py): seeded, versioned draws and a true log-density that is right."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import integrate, stats

from vaepriors.data import circle
from vaepriors.data.continuous import load_raw
from vaepriors.data.prepare import PrepareError, build_arrays, snapshot_generated

SMALL = dataclasses.replace(circle.CIRCLE, n_points=40, dim=2, noise=0.3, grid=512)


def test_generator_is_seeded_and_matches_its_digest():
    a, b = circle.sample(), circle.sample()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert circle.content_sha256(a["x"], a["y"], a["angle"]) == circle.CIRCLE_SHA256
    other = circle.sample(dataclasses.replace(circle.CIRCLE, sample_seed=1))
    assert not np.array_equal(other["x"], a["x"])
    assert a["x"].shape == (circle.CIRCLE.n_points, circle.CIRCLE.dim)
    assert np.bincount(a["y"]).min() > 0.3 * circle.CIRCLE.n_points  # equal weights


def test_angle_prior_is_the_von_mises_mixture():
    theta = np.linspace(0, 2 * np.pi, 7)
    spec = circle.CIRCLE
    ref = sum(w * stats.vonmises.pdf(theta, k, loc=m)
              for m, k, w in zip(spec.means, spec.kappas, spec.weights))
    np.testing.assert_allclose(np.exp(circle.log_prior_angle(theta)), ref, rtol=1e-10)


def test_log_density_matches_adaptive_quadrature_over_the_angle():
    x = circle.sample(SMALL)["x"][:5].astype(np.float64)
    a, b = circle.map_parameters(SMALL)

    def integrand(t, point):
        f = np.tanh(a @ np.array([np.cos(t), np.sin(t)]) + b)
        return (np.exp(circle.log_prior_angle(t, SMALL))
                * stats.multivariate_normal.pdf(point, f, SMALL.noise**2 * np.eye(2)))

    ref = [math.log(integrate.quad(integrand, 0, 2 * np.pi, args=(p,), limit=200, epsabs=0,
                                   epsrel=1e-10)[0]) for p in x]
    np.testing.assert_allclose(circle.log_density(x, SMALL), ref, atol=1e-8)


def test_log_density_integrates_to_one():
    h = 0.02
    axis = np.arange(-2.2, 2.2, h)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    total = np.exp(circle.log_density(grid, SMALL)).sum() * h * h
    assert abs(total - 1) < 1e-3


def test_the_configured_grid_is_converged_on_the_real_toy():
    x = circle.sample()["x"][:50]
    np.testing.assert_allclose(circle.log_density(x), circle.log_density(x, grid=4 * circle.CIRCLE.grid),
                               rtol=0, atol=1e-8)


def test_prepared_arrays_and_a_damaged_snapshot(tmp_path):
    arrays = build_arrays("circle", tmp_path / "raw", split_seed=0, binarize_seed=1, n_validation=2000)
    assert arrays["x_train"].shape == (10000, 100) and arrays["x_train"].dtype == np.float32
    assert np.array_equal(arrays["xb_test"], arrays["x_test"])
    np.testing.assert_allclose(arrays["log_density_test"][:20], circle.log_density(arrays["x_test"][:20]))
    path = snapshot_generated("circle", tmp_path / "raw")
    raw = dict(np.load(path))
    raw["angle"] = raw["angle"] + 0.01
    np.savez(path, **raw)
    with pytest.raises(PrepareError, match="sha256"):
        load_raw("circle", tmp_path / "raw")
