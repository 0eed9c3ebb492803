"""Importance-sampled log-likelihood against exact log p(x) from quadrature over a small latent.

Toy models follow the model interface of docs/design.md with a linear decoder over D = 5 pixels, so
log p(x) = log ∫ p(x|z) p(z) dz can be integrated on a dense float64 grid. Their proposals are
deliberately not the true posterior, so the estimate has a real Jensen gap to close.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from vaepriors.distributions.vmf import HypersphericalUniform, VonMisesFisher
from vaepriors.evaluation import loglik
from vaepriors.evaluation.loglik import (
    active_units,
    choose_ae_proposal_scale,
    chunk_plan,
    elbo_terms,
    importance_log_likelihood,
)

D = 5
BIG_CHUNK = 10**8


class ToyModel(nn.Module):
    """z ~ N(0, I) in R^c, logits = W z + b, q(z|x) = N(A x + a, s^2 I) with s fixed."""

    name = "toy"

    def __init__(self, latent_dim: int, seed: int, proposal_scale: float = 0.9):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.latent_dim = self.code_dim = latent_dim
        self.register_buffer("dec_w", torch.randn(D, latent_dim, generator=g))
        self.register_buffer("dec_b", 0.5 * torch.randn(D, generator=g))
        self.register_buffer("enc_w", 0.1 * torch.randn(D, latent_dim, generator=g))
        self.register_buffer("enc_b", 0.3 * torch.randn(latent_dim, generator=g))
        # s > 1/sqrt(2) keeps the importance weights' variance finite (their tails are Gaussian).
        self.register_buffer("proposal_scale", torch.tensor(proposal_scale))
        self.largest_decode = 0  # most logits one decode call produced: the memory-bound check

    def embed(self, x):
        return x @ self.enc_w + self.enc_b

    def posterior(self, x):
        loc = self.embed(x)
        return Independent(Normal(loc, self.proposal_scale.expand_as(loc)), 1)

    def prior(self):
        zeros = torch.zeros(self.code_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)

    def decode(self, z):
        logits = z @ self.dec_w.T + self.dec_b
        self.largest_decode = max(self.largest_decode, logits.numel())
        return logits

    def loss(self, x, beta=1.0):
        q = self.posterior(x)
        z = q.rsample()
        rec = nn.functional.binary_cross_entropy_with_logits(
            self.decode(z), x, reduction="none"
        ).sum(-1)
        kl = torch.distributions.kl_divergence(q, self.prior())
        return {
            "loss": (rec + beta * kl).mean(),
            "elbo": -(rec + kl).mean(),
            "rec": rec.mean(),
            "kl": kl.mean(),
        }


class ToyVmfModel(ToyModel):
    """The S-VAE shape: z on S^(m-1) in R^m, uniform prior, q(z|x) = vMF(mu(x), kappa(x))."""

    def __init__(self, code_dim: int, seed: int):
        super().__init__(code_dim, seed)
        self.latent_dim = code_dim - 1

    def posterior(self, x):
        # Near the posterior mode (the decoder's gradient direction at x), but not equal to it.
        direction = nn.functional.normalize((x - 0.5) @ self.dec_w + self.enc_b, dim=-1)
        return VonMisesFisher(direction, 1.0 + 0.2 * x.sum(-1))

    def prior(self):
        return HypersphericalUniform(self.code_dim)

    def embed(self, x):
        return self.posterior(x).mean


# Quadrature rules: nodes z (G, c) and log(prior density x quadrature weight) (G,), float64.
def gaussian_rule(code_dim, n):
    axis = torch.linspace(-10.0, 10.0, n, dtype=torch.float64)
    z = torch.cartesian_prod(*[axis] * code_dim).reshape(-1, code_dim)
    return z, Normal(0.0, 1.0).log_prob(z).sum(-1) + code_dim * math.log(axis[1] - axis[0])


def sphere_rule(code_dim, n):
    """Uniform density on S^1 (n equispaced angles, spectrally accurate for periodic integrands)
    or S^2 (Gauss-Legendre in cos(polar angle) x 2n equispaced azimuths)."""
    if code_dim == 2:
        theta = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
        z = torch.stack([theta.cos(), theta.sin()], -1)
        return z, torch.full((n,), -math.log(n))  # density 1/(2 pi) x cell 2 pi / n
    u, u_weight = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(n))
    phi = math.pi * torch.arange(2 * n, dtype=torch.float64) / n
    u, phi = (g.reshape(-1) for g in torch.meshgrid(u, phi, indexing="ij"))
    r = (1 - u**2).sqrt()
    z = torch.stack([r * phi.cos(), r * phi.sin(), u], -1)
    log_w = u_weight.log().repeat_interleave(2 * n) + math.log(math.pi / n) - math.log(4 * math.pi)
    return z, log_w


def exact_log_marginal(model, x, rule):
    """log p(x) = log Σ_nodes p(x|z) p(z) weight, float64, shape (N,)."""
    z, log_w = rule
    logits = z @ model.dec_w.double().T + model.dec_b.double()  # (G, D)
    xd = x.double()
    log_lik = (
        xd @ nn.functional.logsigmoid(logits).T + (1 - xd) @ nn.functional.logsigmoid(-logits).T
    )
    return torch.logsumexp(log_lik + log_w, dim=1)


# (model factory, quadrature rule at the resolution used, the same rule refined)
FAMILIES = {
    "gaussian-R1": (lambda: ToyModel(1, seed=1), lambda f: gaussian_rule(1, 4000 * f + 1)),
    "gaussian-R2": (lambda: ToyModel(2, seed=2), lambda f: gaussian_rule(2, 800 * f + 1)),
    "vmf-S1": (lambda: ToyVmfModel(2, seed=3), lambda f: sphere_rule(2, 1000 * f)),
    "vmf-S2": (lambda: ToyVmfModel(3, seed=4), lambda f: sphere_rule(3, 100 * f)),
}


def distinct_inputs(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, D, generator=g) < 0.5).float()


def estimate(model, x, k, seed, chunk_elements=BIG_CHUNK):
    return importance_log_likelihood(
        model, x, k, chunk_elements, torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_estimate_converges_to_quadrature_and_stays_below(family, capsys):
    """The error shrinks with K and ends small; on average the estimate stays below the truth
    (Jensen), clearly so at K = 1 where the gap is KL(q || p(z|x))."""
    make_model, rule = FAMILIES[family]
    model = make_model()
    x = distinct_inputs(6, seed=1)
    exact = exact_log_marginal(model, x, rule(1))
    rmse = {}
    # Each input repeated: independent estimates in one batched call; many where K is cheap.
    for k, repeats in ((1, 400), (50, 100), (5000, 20)):
        gap = estimate(model, x.repeat(repeats, 1), k, seed=k).view(repeats, -1) - exact
        rmse[k] = float(gap.pow(2).mean().sqrt())
        se = gap.std(0) / math.sqrt(repeats)
        assert torch.all(gap.mean(0) < 3 * se), (k, gap.mean(0), se)  # never significantly above
        if k == 1:
            assert gap.mean() + 3 * gap.std() / math.sqrt(gap.numel()) < 0
    with capsys.disabled():
        print(f"\n{family}: RMSE of the estimate vs quadrature by K: {rmse}")
    assert rmse[5000] < rmse[1] / 20
    assert rmse[5000] < 0.05


@pytest.mark.parametrize("family", FAMILIES)
def test_quadrature_reference_is_converged(family):
    # The reference itself: refining the rule must not move it.
    make_model, rule = FAMILIES[family]
    model, x = make_model(), distinct_inputs(6, seed=1)
    torch.testing.assert_close(
        exact_log_marginal(model, x, rule(1)),
        exact_log_marginal(model, x, rule(2)),
        rtol=0,
        atol=1e-8,
    )


@pytest.mark.parametrize("chunk_elements", [D, 3 * D, 7 * D + 2, 40 * D, BIG_CHUNK])
def test_chunking_gives_identical_estimate_within_memory_bound(chunk_elements, monkeypatch):
    # Sample blocks of 4 (9 points x 2 dims x 4 = 72 values), so blocks and chunks both cut K = 37.
    monkeypatch.setattr(loglik, "SAMPLE_BLOCK_ELEMENTS", 72)
    # float64 throughout, so that a float32 decoder's batch-shape-dependent rounding cannot hide
    # a difference in the samples themselves.
    model, x = ToyModel(2, seed=5).double(), distinct_inputs(9, seed=4).double()
    reference = estimate(model, x, 37, seed=11)
    model.largest_decode = 0
    chunked = estimate(model, x, 37, seed=11, chunk_elements=chunk_elements)
    # Same samples for every point whatever the chunking; only summation order differs.
    torch.testing.assert_close(chunked, reference, rtol=0, atol=1e-12)
    assert model.largest_decode <= chunk_elements


def test_sample_blocks_are_bounded():
    assert loglik.sample_block_size(10_000, 41, 5000) == loglik.SAMPLE_BLOCK_ELEMENTS // 410_000
    assert loglik.sample_block_size(10, 2, 50) == 50
    assert loglik.sample_block_size(10**7, 2, 50) == 1


def test_chunk_plan_fills_budget():
    assert chunk_plan(10, 500, 784, 784 * 10 * 7 + 5) == (10, 7)
    assert chunk_plan(10_000, 500, 784, 784 * 300) == (300, 1)
    assert chunk_plan(10, 3, 784, 10**9) == (10, 3)
    with pytest.raises(ValueError):
        chunk_plan(10, 3, 784, 100)


def test_estimate_is_seeded_and_leaves_global_rng_alone():
    model = ToyModel(1, seed=0)
    x = distinct_inputs(3, seed=0)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    estimate(model, x, 20, seed=7)
    assert torch.rand(1) == before
    torch.testing.assert_close(estimate(model, x, 20, seed=7), estimate(model, x, 20, seed=7))


def test_elbo_terms_match_quadrature_bound():
    # ELBO <= exact log p(x), and elbo = -(rec + kl) by construction.
    model = ToyModel(1, seed=3)
    x = distinct_inputs(5, seed=9).repeat(400, 1)
    terms = elbo_terms(model, x, batch_size=333, generator=torch.Generator().manual_seed(0))
    assert terms["elbo"] == pytest.approx(-(terms["rec"] + terms["kl"]))
    assert terms["elbo"] < float(exact_log_marginal(model, x, gaussian_rule(1, 4001)).mean())


def test_active_units_counts_dimensions_that_vary():
    model = ToyModel(3, seed=0)
    model.enc_w[:, 0] = 1.0  # dimension 0 follows the pixel count: variance 5/4
    model.enc_w[:, 1] = 0.0  # dimension 1 ignores the input: its posterior mean is constant
    model.enc_w[:, 2] = 0.01  # varies, with variance 5/4 * 1e-4 < 0.01
    x = distinct_inputs(500, seed=2)
    assert active_units(model, x) == 1


def test_ae_proposal_scale_chosen_on_validation():
    model = ToyModel(1, seed=4)
    x = distinct_inputs(50, seed=5)
    best, scores = choose_ae_proposal_scale(
        model, x, [0.05, 0.9, 20.0], 200, BIG_CHUNK, torch.Generator().manual_seed(0)
    )
    assert best == 0.9 == max(scores, key=scores.get)
    assert float(model.proposal_scale) == pytest.approx(0.9)


def _float64_log_likelihood(logits, x):
    logits, x = logits.double(), x.double()
    return (x * logits - torch.nn.functional.softplus(logits)).sum(-1)


@pytest.mark.parametrize("binary", [True, False])
def test_bernoulli_log_likelihood_matches_float64(binary):
    # Logits of a confident decoder (|l| up to ~20) plus values that overflow float32 exp (100, 1e4):
    # the fast log1p(exp(.)) path must hand those to the stable softplus, not return -inf.
    g = torch.Generator().manual_seed(0)
    d = 784 + 3  # not a multiple of the pixel group: the remainder is summed too
    x = (torch.rand(6, d, generator=g) < 0.3).float()
    if not binary:
        x = torch.rand(6, d, generator=g)
    logits = (1 - 2 * (x > 0.5).float()) * -4 * torch.rand(3, 6, d, generator=g).add_(0.2)
    logits[0, 1, 5] = 100.0 * (1 - 2 * x[1, 5].round())  # a pixel predicted wrongly at 100 nats
    logits[2, 4, -1] = 1e4 * (1 - 2 * x[4, -1].round())
    before = logits.clone()
    got = loglik.bernoulli_log_likelihood(logits, x)
    assert torch.equal(logits, before)  # the caller's logits are left alone
    assert got.dtype == torch.float64 and got.shape == (3, 6)
    want = _float64_log_likelihood(logits, x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * max(1.0, float(want.abs().max()) / 100))
    if binary:
        assert float(got[0, 1]) < -100 and float(got[2, 4]) < -1e4


def test_decoded_log_likelihood_recomputes_overflowed_rows(monkeypatch):
    # Blocks of 2 codes on CPU; one code decodes to a logit past float32 exp's range on a pixel
    # it gets wrong: the estimate must stay finite and equal the float64 value.
    monkeypatch.setattr(loglik, "CPU_BLOCK_ELEMENTS", 2 * D)
    model = ToyModel(1, seed=0)
    x = torch.tensor([[1.0, 0, 1, 0, 1], [0, 0, 1, 1, 0], [1, 1, 1, 1, 1]])
    z = torch.tensor([[[0.1], [-0.3], [0.2]], [[500.0], [0.4], [-500.0]]])  # (S=2, P=3, 1)
    got = loglik._decoded_log_likelihood(model, z, x, loglik._binary_signs(x))
    want = _float64_log_likelihood(model.decode(z), x)
    assert torch.isfinite(got).all() and float(got.min()) < -100
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-5)


class _PriorPosteriorToy(ToyModel):
    """q(z|x) = p(z) = N(0, I): every prior/posterior ratio is exactly 1."""

    def posterior(self, x):
        zeros = torch.zeros(len(x), self.code_dim)
        return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def test_shared_sample_diagnostic_is_one_decoder_sample_plus_the_ratio_term():
    """The S-VAE authors' example estimator: log p(x|z_0) for ONE z_0 ~ q, plus
    logmeanexp_k log p(z_k)/q(z_k|x). With q = p the second term is exactly 0 for every K, so the
    value is the Bernoulli log-likelihood of one posterior draw (checked against a direct
    float64 computation with the same draw); with q != p and many samples it approaches
    E_q[log p(x|z)] (Monte Carlo), far above the ELBO."""
    from vaepriors.evaluation.loglik import _draw_seed, shared_sample_log_likelihood

    x = distinct_inputs(30, seed=0)
    model = _PriorPosteriorToy(2, seed=1)
    values = {(k, b): shared_sample_log_likelihood(model, x, k, torch.Generator().manual_seed(4), batch_size=b)
              for k, b in ((1, 30), (50, 30), (50, 7))}
    # one batch: z_0 is the first draw whatever K is
    torch.testing.assert_close(values[1, 30], values[50, 30], rtol=0, atol=1e-12)
    torch.manual_seed(_draw_seed(torch.Generator().manual_seed(4)))
    direct = []
    for s in range(0, 30, 7):
        batch = x[s : s + 7].double()
        z0 = torch.randn(len(batch), 2).double()
        torch.randn(50, len(batch), 2)  # the K draws of the ratio term
        logits = z0 @ model.dec_w.double().T + model.dec_b.double()
        direct.append((batch * nn.functional.logsigmoid(logits)
                       + (1 - batch) * nn.functional.logsigmoid(-logits)).sum(-1))
    torch.testing.assert_close(values[50, 7], torch.cat(direct), rtol=1e-6, atol=1e-5)

    toy = ToyModel(2, seed=2, proposal_scale=0.8)
    x = distinct_inputs(400, seed=3)
    shared = shared_sample_log_likelihood(toy, x, 2000, torch.Generator().manual_seed(1)).mean()
    q = toy.posterior(x)
    z = q.sample((4000,))
    rec = -nn.functional.binary_cross_entropy_with_logits(
        toy.decode(z), x.expand(4000, *x.shape), reduction="none").sum(-1).mean()
    kl = torch.distributions.kl_divergence(q, toy.prior()).mean()
    assert abs(float(shared - rec)) < 0.15  # the ratio term's bias is small at K = 2000
    assert float(shared) > float(rec - kl) + 0.5 * float(kl)  # far above the ELBO
