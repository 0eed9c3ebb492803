"""The families added beyond the paper's four, through the real scripts, and their priors, KL terms
and importance-sampled log-likelihoods against independent references (scipy, exact quadrature)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import special, stats
from torch.distributions import kl_divergence

from vaepriors import families
from vaepriors.config import REPO_ROOT, to_flags
from vaepriors.evaluation.loglik import importance_log_likelihood

NEW = ["psvae", "lvae", "vamp"]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("family", NEW)
def test_family_runs_through_train_and_evaluate(family, eval_cfg, processed_npz, train_cfg, model_cfg, tmp_path):
    cls = families.get(family)
    train_cfg["max_epochs"] = 2
    run_dir = tmp_path / "models" / family
    done = run("scripts/train.py", "--data", str(processed_npz), "--out-dir", str(run_dir),
               "--dataset", "synthetic", "--model", family, "--latent-dim", "2", "--seed", "0",
               "--no-progress", *to_flags(train_cfg).split(), *to_flags(model_cfg).split())
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["model"] == family and record["code_dim"] == (3 if cls.sphere else 2)
    assert np.isfinite(pd.read_csv(run_dir / "history.csv")["val_elbo"]).all()

    metrics = tmp_path / "metrics.json"
    done = run("scripts/evaluate.py", "--data", str(processed_npz), "--model", str(run_dir / "model.pt"),
               "--out", str(metrics), "--seed", "0", "--no-progress", *to_flags(eval_cfg).split())
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(metrics.read_text())
    assert result["model"] == family and np.isfinite(result["loglik"]["mean"])
    # log p(x) >= ELBO, up to the noise of 16 importance samples
    assert result["loglik"]["mean"] >= result["elbo"]["elbo"] - 1.0
    method = result["clustering"]["method"]
    assert method.startswith("spherical k-means") if cls.sphere else method.startswith("k-means")


# --- priors and KL terms against scipy ------------------------------------------------------------

D = 5  # pixels of the tiny models


def tiny(family, latent_dim, seed=0, **extra):
    """A float64 model of the family over D pixels (hidden [4]) with a random encoder and decoder."""
    torch.manual_seed(seed)
    model = families.get(family)(input_dim=D, latent_dim=latent_dim, hidden=[4], **extra).double()
    if family == "vamp":
        with torch.no_grad():
            model.pseudo_logits.normal_(0.0, 2.0)
    return model


def binary_inputs(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, D, generator=g) < 0.5).double()


def vamp_components(model):
    """(means, scales) of the VampPrior's components: the encoder's posterior at the pseudo-inputs."""
    q = model.posterior(torch.sigmoid(model.pseudo_logits)).base_dist
    return q.loc.detach().numpy(), q.scale.detach().numpy()


def scipy_log_prior(model, z):
    """log p(z) with scipy: Laplace(0, 1) per coordinate, the uniform density on the sphere S^(m-1)
    (1 / area, area = 2 pi^(m/2) / Gamma(m/2)), or the uniform mixture of the pseudo-inputs'
    diagonal Gaussians (logsumexp over components of summed norm.logpdf)."""
    if model.name == "psvae":
        m = z.shape[-1]
        return np.full(z.shape[:-1], special.gammaln(m / 2) - math.log(2) - (m / 2) * math.log(math.pi))
    if model.name == "lvae":
        return stats.laplace.logpdf(z).sum(-1)
    means, scales = vamp_components(model)
    per_component = stats.norm.logpdf(z[..., None, :], means, scales).sum(-1)
    return special.logsumexp(per_component, axis=-1) - math.log(len(means))


@pytest.mark.parametrize("family", ["lvae", "vamp"])
def test_prior_log_density_matches_scipy(family):
    model = tiny(family, latent_dim=3, n_pseudo_inputs=7) if family == "vamp" else tiny(family, 3)
    g = np.random.default_rng(0)
    z = np.concatenate([g.standard_normal((200, 3)) * 2, [[0.0, 0.0, 0.0], [40.0, -30.0, 25.0]]])
    z = np.stack([z, z[::-1]])  # leading sample dimension, as the evaluation's blocks
    with torch.no_grad():
        got = model.prior().log_prob(torch.from_numpy(z)).numpy()
    assert got.shape == z.shape[:-1]
    np.testing.assert_allclose(got, scipy_log_prior(model, z), rtol=1e-10, atol=1e-8)


def test_vamp_log_density_in_blocks_and_float32(monkeypatch):
    """Blocks of rows (memory bound) give the same values; float32 codes get float32 values."""
    from vaepriors.distributions.mixture import DiagonalGaussianMixture

    model = tiny("vamp", latent_dim=2, n_pseudo_inputs=9)
    z = torch.randn(4, 50, 2, dtype=torch.float64)
    with torch.no_grad():
        whole = model.prior().log_prob(z)
        monkeypatch.setattr(DiagonalGaussianMixture, "BLOCK_ELEMENTS", 9 * 7)
        torch.testing.assert_close(model.prior().log_prob(z), whole, rtol=0, atol=1e-12)
        single = model.float().prior().log_prob(z.float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), whole, rtol=1e-5, atol=1e-5)


def test_vamp_prior_follows_the_encoder_and_trains_the_pseudo_inputs():
    model = tiny("vamp", latent_dim=2, n_pseudo_inputs=5)
    pseudo = torch.sigmoid(model.pseudo_logits)
    assert ((pseudo > 0) & (pseudo < 1)).all()
    before = model.prior().component_distribution.mean.detach().clone()
    torch.testing.assert_close(before, model.embed(pseudo).detach())
    with torch.no_grad():
        model.head.bias.add_(1.0)  # the encoder changes: the prior built next follows it
    torch.testing.assert_close(model.prior().component_distribution.mean.detach(), before + 1.0)
    model.loss(binary_inputs(8, seed=0))["loss"].backward()
    assert model.pseudo_logits.grad is not None and model.pseudo_logits.grad.abs().sum() > 0


def test_vamp_pseudo_inputs_start_from_training_images(train_data, train_cfg, tmp_path):
    from vaepriors.training.trainer import Trainer

    torch.manual_seed(0)
    model = families.get("vamp")(input_dim=train_data.x_train.shape[1], latent_dim=2, hidden=[8],
                                 n_pseudo_inputs=6)
    trainer = Trainer(model, train_data, {**train_cfg, "max_epochs": 0}, 3, tmp_path, run_config={},
                      progress=False)
    model.before_training(trainer.seed_setup(0))
    pseudo = torch.sigmoid(model.pseudo_logits.detach())
    images = train_data.x_train.clamp(0.05, 0.95)
    # every pseudo-input is one of the training images, six different ones
    match = (pseudo[:, None, :] - images[None]).abs().amax(-1) < 1e-6
    assert match.any(1).all() and len({int(i) for i in match.float().argmax(1)}) == 6


def test_laplace_kl_is_the_closed_form_and_matches_monte_carlo():
    """torch's registered Laplace-Laplace KL (what the model's analytic KL is) equals
    -log b - 1 + |mu| + b exp(-|mu|/b) summed over dimensions, and the mean of log q - log p
    over draws from scipy (independent of torch's sampler)."""
    model = tiny("lvae", latent_dim=3)
    with torch.no_grad():  # a posterior far from the prior: a large KL
        model.head.weight.mul_(4.0)
    x = binary_inputs(5, seed=2)
    q = model.posterior(x)
    kl = model.kl(q, q.rsample()).detach()
    mu, b = q.base_dist.loc.detach(), q.base_dist.scale.detach()
    closed = (-b.log() - 1 + mu.abs() + b * torch.exp(-mu.abs() / b)).sum(-1)
    torch.testing.assert_close(kl, closed, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kl_divergence(q, model.prior()).detach(), closed, rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(1)
    n = 400_000
    for i in range(len(x)):
        z = stats.laplace.rvs(mu[i].numpy(), b[i].numpy(), size=(n, 3), random_state=g)
        log_ratio = stats.laplace.logpdf(z, mu[i].numpy(), b[i].numpy()).sum(-1) - stats.laplace.logpdf(z).sum(-1)
        assert abs(log_ratio.mean() - float(kl[i])) < 5 * log_ratio.std() / math.sqrt(n)


def test_vamp_monte_carlo_kl_is_unbiased():
    """The loss's one-sample KL estimate, averaged over many draws, against a large Monte Carlo of
    log q - log p with scipy densities and numpy draws."""
    model = tiny("vamp", latent_dim=2, n_pseudo_inputs=6)
    x = binary_inputs(3, seed=3)
    n = 200_000
    q = model.posterior(x)
    torch.manual_seed(4)
    with torch.no_grad():
        z = q.rsample((n,))
        estimates = model.kl(q, z).numpy()  # (n, 3)
    mu, sigma = q.base_dist.loc.detach().numpy(), q.base_dist.scale.detach().numpy()
    g = np.random.default_rng(5)
    for i in range(len(x)):
        zr = mu[i] + sigma[i] * g.standard_normal((n, 2))
        ref = stats.norm.logpdf(zr, mu[i], sigma[i]).sum(-1) - scipy_log_prior(model, zr)
        se = math.hypot(ref.std(), estimates[:, i].std()) / math.sqrt(n)
        assert abs(estimates[:, i].mean() - ref.mean()) < 5 * se, (i, estimates[:, i].mean(), ref.mean(), se)
        assert ref.mean() > 0


# --- importance-sampled log-likelihood against exact quadrature -----------------------------------

def grid_rule(latent_dim, half_width, n):
    """Nodes (n^latent_dim, latent_dim) of an equispaced grid and the log of its cell volume (an odd
    n puts a node on 0, where the Laplace density has its kink)."""
    axis = np.linspace(-half_width, half_width, n)
    z = np.stack(np.meshgrid(*[axis] * latent_dim, indexing="ij"), -1).reshape(-1, latent_dim)
    return z, latent_dim * math.log(axis[1] - axis[0])


def exact_log_marginal(model, x, rule):
    """log p(x) = log sum_nodes p(x|z) p(z) cell, with the decoder in float64 and scipy's prior."""
    z, log_cell = rule
    with torch.no_grad():
        logits = model.decode(torch.from_numpy(z))  # (G, D)
    log_lik = x @ torch.nn.functional.logsigmoid(logits).T + (1 - x) @ torch.nn.functional.logsigmoid(-logits).T
    return torch.logsumexp(log_lik + torch.from_numpy(scipy_log_prior(model, z) + log_cell), dim=1)


def sphere_rule(latent_dim, n):
    """Nodes on S^1 (n equispaced angles, spectrally accurate for periodic integrands) or S^2
    (Gauss-Legendre in the cosine of the polar angle x 2n equispaced azimuths) and the log of
    their surface weights."""
    if latent_dim == 1:
        theta = 2 * math.pi * np.arange(n) / n
        return np.stack([np.cos(theta), np.sin(theta)], -1), math.log(2 * math.pi / n)
    u, u_weight = np.polynomial.legendre.leggauss(n)
    phi = math.pi * np.arange(2 * n) / n
    u, phi = (g.reshape(-1) for g in np.meshgrid(u, phi, indexing="ij"))
    r = np.sqrt(1 - u**2)
    return (np.stack([r * np.cos(phi), r * np.sin(phi), u], -1),
            np.log(np.repeat(u_weight, 2 * n)) + math.log(math.pi / n))


# (family, latent dim, quadrature rule at the resolution used, refined)
LOGLIK_CASES = {
    "psvae-S1": ("psvae", 1, lambda f: sphere_rule(1, 2000 * f)),
    "psvae-S2": ("psvae", 2, lambda f: sphere_rule(2, 150 * f)),
    "lvae-R1": ("lvae", 1, lambda f: grid_rule(1, 40.0, 40000 * f + 1)),
    "lvae-R2": ("lvae", 2, lambda f: grid_rule(2, 30.0, 1200 * f + 1)),
    "vamp-R2": ("vamp", 2, lambda f: grid_rule(2, 15.0, 900 * f + 1)),
}


def loglik_model(case):
    family, latent_dim, _ = LOGLIK_CASES[case]
    model = tiny(family, latent_dim, seed=1, **({"n_pseudo_inputs": 4} if family == "vamp" else {}))
    with torch.no_grad():
        # proposals wider than the prior's scale keep the importance weights' variance finite
        model.head.bias[model.code_dim:].add_(0.4)
    return model


@pytest.mark.parametrize("case", LOGLIK_CASES)
def test_quadrature_reference_is_converged(case):
    model, x = loglik_model(case), binary_inputs(6, seed=1)
    rule = LOGLIK_CASES[case][2]
    # the Laplace density's kinks and the decoder's ReLUs make a grid rule second order: in 2-d at
    # the resolution used ~3e-4 nats, far below what the importance-sampling test resolves (0.05)
    atol = 2e-5 if LOGLIK_CASES[case][1] == 1 else 1e-3
    torch.testing.assert_close(exact_log_marginal(model, x, rule(1)), exact_log_marginal(model, x, rule(2)),
                               rtol=0, atol=atol)


@pytest.mark.parametrize("case", LOGLIK_CASES)
def test_importance_sampled_loglik_matches_quadrature(case):
    """Converges to the exact log p(x) and stays below it on average (Jensen), clearly at K = 1."""
    model, x = loglik_model(case), binary_inputs(6, seed=1)
    exact = exact_log_marginal(model, x, LOGLIK_CASES[case][2](1))
    rmse = {}
    for k, repeats in ((1, 400), (2000, 20)):
        est = importance_log_likelihood(model, x.repeat(repeats, 1), k, 10**8, torch.Generator().manual_seed(k),
                                        kernel="torch")
        gap = est.view(repeats, -1) - exact
        rmse[k] = float(gap.pow(2).mean().sqrt())
        assert torch.all(gap.mean(0) < 3 * gap.std(0) / math.sqrt(repeats) + 1e-4), (k, gap.mean(0))
        if k == 1:
            assert gap.mean() + 3 * gap.std() / math.sqrt(gap.numel()) < 0
    # The Power Spherical proposal vanishes at -mu, (1 + mu.z)^kappa, so the weights p(x|z) p(z) / q(z)
    # have infinite variance once kappa >= (m - 1) / 2: the estimate still converges, more slowly.
    factor, limit = (3, 0.3) if LOGLIK_CASES[case][0] == "psvae" else (10, 0.05)
    assert rmse[2000] < rmse[1] / factor and rmse[2000] < limit, rmse
