"""The circle toy (Davidson et al. 2018, Figure 1): data whose latent structure is known.

Angles theta come from a mixture of three von Mises-Fisher (von Mises) distributions on the
circle S^1 and are mapped into R^100 by a fixed, noisy, non-linear map. The paper publishes
neither map nor sizes nor noise; ours (version 1, CIRCLE below):

    u = (cos theta, sin theta),   x = tanh(A u + b) + sigma * eps,   eps ~ N(0, I_100)

with A (100 x 2) i.i.d. N(0, 1.5^2) and b (100) i.i.d. N(0, 0.5^2) drawn once from map_seed,
sigma = 0.1; components at angles 0, 2 pi / 3, 4 pi / 3 with concentration 5 and equal weights;
14000 points drawn from sample_seed (the split is data.split_seed's, n_validation each for
validation and test). Labels are the mixture components.

The true density is known up to a one-dimensional integral over the angle,

    p(x) = int_0^{2 pi} sum_k w_k vM(theta; mu_k, kappa_k) N(x; f(theta), sigma^2 I) d theta,

computed by the trapezoid rule on an equispaced periodic grid (spectrally accurate for a smooth
periodic integrand; the grid resolves the integrand's width sigma / |f'(theta)|; the tests check
the grid against a refined one and against adaptive quadrature): log_density is exact to the
rule's accuracy, not a bound.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import i0e, logsumexp


@dataclass(frozen=True)
class CircleSpec:
    version: int
    n_points: int
    dim: int
    means: tuple[float, ...]
    kappas: tuple[float, ...]
    weights: tuple[float, ...]
    weight_scale: float  # sd of A's entries
    bias_scale: float  # sd of b's entries
    noise: float  # sigma
    map_seed: int
    sample_seed: int
    grid: int  # trapezoid nodes of the true log-density

    def describe(self) -> dict:
        return {**asdict(self), "map": "x = tanh(A (cos t, sin t) + b) + noise * N(0, I)"}


CIRCLE = CircleSpec(version=1, n_points=14000, dim=100,
                    means=(0.0, 2 * math.pi / 3, 4 * math.pi / 3), kappas=(5.0, 5.0, 5.0),
                    weights=(1 / 3, 1 / 3, 1 / 3), weight_scale=1.5, bias_scale=0.5, noise=0.1,
                    map_seed=2018, sample_seed=2019, grid=4096)

# sha256 of the labels, the angles rounded to 1e-6 and the points rounded to 1e-4: a changed
# generator or map cannot slip into results unnoticed, while last-bit differences of libm
# between machines do not matter.
CIRCLE_SHA256 = "e512dc5e4ae43b74c8be1fe706f24e8263636002c3e199c399441ac1c515805c"


def map_parameters(spec: CircleSpec = CIRCLE) -> tuple[np.ndarray, np.ndarray]:
    """(A (dim, 2), b (dim,)) of the fixed map."""
    rng = np.random.default_rng(spec.map_seed)
    a = spec.weight_scale * rng.standard_normal((spec.dim, 2))
    b = spec.bias_scale * rng.standard_normal(spec.dim)
    return a, b


def embed(theta: np.ndarray, spec: CircleSpec = CIRCLE) -> np.ndarray:
    """f(theta): (..., dim), the noiseless map."""
    a, b = map_parameters(spec)
    u = np.stack([np.cos(theta), np.sin(theta)], -1)
    return np.tanh(u @ a.T + b)


def sample(spec: CircleSpec = CIRCLE) -> dict[str, np.ndarray]:
    """{x float32 (n, dim), y int64 component, angle float64 in [0, 2 pi)} from sample_seed."""
    rng = np.random.default_rng(spec.sample_seed)
    y = rng.choice(len(spec.weights), size=spec.n_points, p=np.asarray(spec.weights))
    mu, kappa = np.asarray(spec.means)[y], np.asarray(spec.kappas)[y]
    angle = np.mod(rng.vonmises(mu, kappa), 2 * math.pi)
    eps = rng.standard_normal((spec.n_points, spec.dim))
    x = embed(angle, spec) + spec.noise * eps
    return {"x": x.astype(np.float32), "y": y.astype(np.int64), "angle": angle}


def content_sha256(x: np.ndarray, y: np.ndarray, angle: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    digest.update(np.round(np.asarray(angle, dtype=np.float64), 6).tobytes())
    digest.update(np.round(np.asarray(x, dtype=np.float64), 4).tobytes())
    return digest.hexdigest()


def log_prior_angle(theta: np.ndarray, spec: CircleSpec = CIRCLE) -> np.ndarray:
    """log of the mixture of von Mises densities at theta (w.r.t. d theta on [0, 2 pi))."""
    theta = np.asarray(theta, dtype=np.float64)[..., None]
    mu, kappa, w = (np.asarray(v, dtype=np.float64) for v in (spec.means, spec.kappas, spec.weights))
    # vM density exp(kappa cos(t - mu)) / (2 pi I0(kappa)); i0e(k) = I0(k) exp(-k)
    log_comp = kappa * (np.cos(theta - mu) - 1) - np.log(2 * math.pi * i0e(kappa))
    return logsumexp(log_comp + np.log(w), axis=-1)


def log_density(x: np.ndarray, spec: CircleSpec = CIRCLE, grid: int | None = None,
                batch: int = 256) -> np.ndarray:
    """True log p(x) (N,), float64: the trapezoid rule over the angle on ``grid`` nodes."""
    m = int(grid or spec.grid)
    theta = 2 * math.pi * np.arange(m) / m
    centres = embed(theta, spec)  # (m, dim)
    # log(prior x node weight 2 pi / m) + the Gaussian's normalising constant
    log_w = log_prior_angle(theta, spec) + math.log(2 * math.pi / m)
    const = -spec.dim * (math.log(spec.noise) + 0.5 * math.log(2 * math.pi))
    x = np.asarray(x, dtype=np.float64)
    c2 = (centres**2).sum(-1)
    out = np.empty(len(x))
    for s in range(0, len(x), batch):
        xb = x[s : s + batch]
        sq = (xb**2).sum(-1)[:, None] - 2 * xb @ centres.T + c2  # |x - f(theta)|^2
        out[s : s + batch] = logsumexp(log_w - 0.5 * np.maximum(sq, 0) / spec.noise**2, axis=-1)
    return out + const
