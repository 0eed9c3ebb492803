"""The four latent families: interface and shapes (docs/design.md), latent convention, output-bias
initialisation, N-VAE and GMM-VAE KL terms, GMM-VAE clamping and clustering, the AE's ex-post
density, the checkpoint round trip, and S-VAE training at d = 128."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture
from torch import nn
from torch.distributions import Independent, Normal

from vaepriors import code_dim
from vaepriors.models import FAMILIES, build_model, load_model, save_model
from vaepriors.models.gaussian import LOGVAR_MAX, LOGVAR_MIN

D = 64
HIDDEN = [32, 16]
K = 5


def make(family: str, latent_dim: int = 3, seed: int = 0, **extra):
    torch.manual_seed(seed)
    kwargs = {"input_dim": D, "latent_dim": latent_dim, "hidden": HIDDEN, **extra}
    if family == "gmmvae":
        kwargs.setdefault("n_components", K)
    if family == "vamp":
        kwargs.setdefault("n_pseudo_inputs", K)
    return build_model(family, **kwargs)


def binary_batch(n: int = 7, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, D), 0.4), generator=g)


# --- interface ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_interface_shapes(family):
    model = make(family, latent_dim=3)
    c = model.code_dim
    B, S = 7, 3
    x = binary_batch(B)
    assert model.name == family and model.latent_dim == 3

    q = model.posterior(x)
    assert q.batch_shape == (B,) and q.event_shape == (c,)
    z = q.rsample()
    assert z.shape == (B, c)
    zs = q.rsample((S,))
    assert zs.shape == (S, B, c)
    assert q.log_prob(z).shape == (B,)

    p = model.prior()
    assert p.batch_shape == () and p.event_shape == (c,)
    lp = p.log_prob(z)
    assert lp.shape == (B,) and torch.isfinite(lp).all()
    assert p.log_prob(zs).shape == (S, B)
    assert p.sample((4,)).shape == (4, c)

    assert model.decode(z).shape == (B, D)
    assert model.decode(zs).shape == (S, B, D)
    emb = model.embed(x)
    assert emb.shape == (B, c)

    terms = model.loss(x, beta=0.5)
    assert {"loss", "elbo", "rec", "kl"} <= set(terms)
    for name in ("loss", "elbo", "rec", "kl"):
        assert terms[name].shape == (), name
        assert torch.isfinite(terms[name]), name
    torch.testing.assert_close(terms["elbo"], -(terms["rec"] + terms["kl"]))
    if family == "ae":
        assert terms["kl"] == 0 and torch.equal(terms["loss"], terms["rec"])
    else:
        torch.testing.assert_close(terms["loss"], terms["rec"] + 0.5 * terms["kl"])
        assert terms["kl"] != 0
    assert terms["rec"] > 0
    terms["loss"].backward()
    for name, param in model.named_parameters():
        if name.startswith(("body.", "decoder.")):
            assert param.grad is not None and torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize("d", [1, 5, 128])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_latent_dimension_convention(family, d):
    model = make(family, latent_dim=d)
    on_sphere = FAMILIES[family].sphere
    expected = d + 1 if on_sphere else d
    assert code_dim(family, d) == expected
    assert model.latent_dim == d and model.code_dim == expected
    assert model.decoder[0].in_features == expected
    x = binary_batch(4)
    assert model.embed(x).shape == (4, expected)
    assert model.posterior(x).rsample().shape == (4, expected)
    if on_sphere:  # codes live on the unit sphere of R^(d+1)
        torch.testing.assert_close(model.embed(x).norm(dim=-1), torch.ones(4))
        torch.testing.assert_close(model.posterior(x).rsample().norm(dim=-1), torch.ones(4))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_output_bias_is_logit_of_pixel_means(family, clustered_arrays):
    model = make(family)
    x_train = torch.from_numpy(clustered_arrays["x_train"]).float() / 255
    # Pixels that are always off / always on in the training set must still give finite logits.
    x_train[:, 0], x_train[:, 1] = 0.0, 1.0
    mean = x_train.mean(0)
    model.init_output_bias(mean)
    bias = model.decoder[-1].bias
    assert torch.isfinite(bias).all()
    p = mean.clamp(1e-3, 1 - 1e-3)
    torch.testing.assert_close(bias, torch.log(p / (1 - p)))
    inner = (mean > 1e-3) & (mean < 1 - 1e-3)
    assert inner.sum() > 50
    torch.testing.assert_close(torch.sigmoid(bias)[inner], mean[inner])


# --- N-VAE --------------------------------------------------------------------------------------

def test_nvae_analytic_kl_matches_monte_carlo():
    model = make("nvae", latent_dim=4)
    with torch.no_grad():  # a posterior far from the prior, so that the KL is large
        model.head.weight.mul_(8.0)
        model.head.bias.uniform_(-1.5, 1.5)
    x = binary_batch(6)
    q, p = model.posterior(x), model.prior()
    analytic = model.kl(q, q.rsample())
    mu, sigma = q.base_dist.loc, q.base_dist.scale
    closed = 0.5 * (mu**2 + sigma**2 - 1 - 2 * torch.log(sigma)).sum(-1)
    torch.testing.assert_close(analytic, closed, rtol=1e-5, atol=1e-5)
    assert analytic.min() > 0.5

    torch.manual_seed(3)
    z = q.sample((40000,))
    log_ratio = (q.log_prob(z) - p.log_prob(z)).double()
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    assert ((analytic.double() - mc).abs() < 5 * se + 1e-3).all(), (analytic, mc, se)

    # and the loss reports exactly this KL
    torch.testing.assert_close(model.loss(x)["kl"], analytic.mean())

    # the shortcut against N(0, I) is torch's registered Normal-Normal KL, bit for bit, gradients too
    from torch.distributions import kl_divergence

    def kl_and_grads(kl_of):
        model.zero_grad()
        q = model.posterior(x)
        kl = kl_of(q)
        kl.sum().backward()
        return kl.detach(), [p.grad.clone() for p in model.head.parameters()]

    ours, ours_grads = kl_and_grads(lambda q: model.kl(q, None))
    torchs, torch_grads = kl_and_grads(lambda q: kl_divergence(q, model.prior()))
    assert torch.equal(ours, torchs)
    assert all(torch.equal(a, b) for a, b in zip(ours_grads, torch_grads))


# --- GMM-VAE ------------------------------------------------------------------------------------

def manual_mixture_log_density(model, z: torch.Tensor) -> torch.Tensor:
    """log sum_k pi_k N(z; mu_k, diag exp(clamped logvar_k)), written out with logsumexp."""
    logvar = model.prior_logvars.clamp(LOGVAR_MIN, LOGVAR_MAX)
    log_pi = torch.log_softmax(model.prior_logits, -1)
    diff = z.unsqueeze(-2) - model.prior_means  # (..., K, d)
    log_comp = -0.5 * (diff**2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(log_pi + log_comp, dim=-1)


def test_gmmvae_prior_logvars_clamped():
    model = make("gmmvae", latent_dim=3)
    with torch.no_grad():
        model.prior_logvars[: K // 2] = 1e4
        model.prior_logvars[K // 2 :] = -1e4
        model.prior_logvars[0, 0] = float("inf")
        model.prior_logvars[-1, 0] = -float("inf")
        model.prior_means.mul_(50.0)
    prior = model.prior()
    scale = prior.component_distribution.base_dist.scale
    torch.testing.assert_close(scale.max(), torch.tensor(math.exp(0.5 * LOGVAR_MAX)))
    torch.testing.assert_close(scale.min(), torch.tensor(math.exp(0.5 * LOGVAR_MIN)))
    z = torch.cat([torch.randn(20, 3) * 100, model.prior_means.detach()])
    lp = prior.log_prob(z)
    assert torch.isfinite(lp).all()
    torch.testing.assert_close(lp, manual_mixture_log_density(model, z))
    # A saturated encoder (huge log-variance head) stays finite as well.
    with torch.no_grad():
        model.head.bias[model.code_dim :] = 1e4
    terms = model.loss(binary_batch(8))
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name


def test_gmmvae_kl_is_monte_carlo_of_exact_mixture_density():
    model = make("gmmvae", latent_dim=3)
    with torch.no_grad():
        model.prior_logits.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0, -0.3]))
        model.prior_logvars.uniform_(-1.0, 1.0)
    x = binary_batch(9)
    torch.manual_seed(11)
    terms = model.loss(x, beta=0.3)
    torch.manual_seed(11)
    q = model.posterior(x)
    z = q.rsample()
    kl = q.log_prob(z) - manual_mixture_log_density(model, z)
    torch.testing.assert_close(terms["kl"], kl.mean())
    torch.testing.assert_close(model.prior().log_prob(z), manual_mixture_log_density(model, z))
    # When every component is N(0, I) the mixture is N(0, I): the estimator averages to the
    # analytic Gaussian KL.
    with torch.no_grad():
        model.prior_means.zero_()
        model.prior_logvars.zero_()
    zs = q.sample((20000,))
    log_ratio = model.kl(q, zs).double()
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(zs))
    exact = torch.distributions.kl_divergence(q, Independent(Normal(torch.zeros(3), 1.0), 1))
    assert ((exact.double() - mc).abs() < 5 * se + 1e-3).all(), (exact, mc, se)


def test_gmmvae_cluster_is_argmax_of_averaged_component_posterior():
    model = make("gmmvae", latent_dim=2)
    with torch.no_grad():
        model.prior_means.copy_(3.0 * torch.randn(K, 2))
        model.prior_logits.copy_(torch.randn(K))
        model.head.bias[2:] = 1.0  # wide posteriors: samples disagree, so averaging matters
    x = binary_batch(64)
    n = 25
    torch.manual_seed(5)
    got = model.cluster(x, n_samples=n)
    torch.manual_seed(5)
    z = model.posterior(x).sample((n,))  # (n, B, d)
    log_pi = torch.log_softmax(model.prior_logits, -1)
    logvar = model.prior_logvars.clamp(LOGVAR_MIN, LOGVAR_MAX)
    comp = Independent(Normal(model.prior_means, torch.exp(0.5 * logvar)), 1)
    resp = torch.softmax(comp.log_prob(z.unsqueeze(-2)) + log_pi, -1)  # p(k|z): (n, B, K)
    expected = resp.mean(0).argmax(-1)
    assert got.shape == (64,) and got.dtype == torch.int64
    assert torch.equal(got, expected)
    # not the same as the argmax at a single sample: the average is what is used
    assert not torch.equal(resp[0].argmax(-1), expected)


def test_gmmvae_initialise_prior_from_codes():
    model = make("gmmvae", latent_dim=2)
    rng = np.random.default_rng(0)
    centres = np.array([[-6, 0], [6, 0], [0, 6], [0, -6], [6, 6]], dtype=float)
    codes = np.concatenate([c + 0.3 * rng.standard_normal((100, 2)) for c in centres])
    model.initialise_prior(codes, seed=0)
    means = model.prior_means.detach().numpy()
    # each true centre has a component at it
    dist = np.linalg.norm(means[:, None] - centres[None], axis=-1)
    assert dist.min(0).max() < 0.2
    np.testing.assert_allclose(torch.softmax(model.prior_logits, -1).detach().numpy(), 0.2, atol=0.01)
    np.testing.assert_allclose(model.prior_logvars.exp().detach().numpy(), 0.09, rtol=0.5)


# --- AE -----------------------------------------------------------------------------------------

def three_blobs(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 0.0], [4.0, 1.0], [0.0, 5.0]])
    cov = np.array([[0.5, 0.3], [0.3, 0.4]])
    chol = np.linalg.cholesky(cov)
    return centres[rng.integers(0, 3, n)] + rng.standard_normal((n, 2)) @ chol.T


def test_ae_fit_density_chooses_k_by_validation_and_matches_sklearn():
    model = make("ae", latent_dim=2)
    train, val, test = three_blobs(600, 0), three_blobs(300, 1), three_blobs(50, 2)
    candidates = [1, 3, 8, 10_000]  # 10 000 > number of codes: skipped
    scores = model.fit_density(train, val, candidates, seed=0)
    assert set(scores) == {1, 3, 8}
    ref = {k: GaussianMixture(k, covariance_type="full", random_state=0, reg_covar=1e-5)
           .fit(train).score(val) for k in (1, 3, 8)}
    for k in ref:
        assert scores[k] == pytest.approx(ref[k], rel=1e-9)
    best = max(ref, key=ref.get)
    assert best != 1 and model.density_components == best
    assert model.density_weights.shape == (best,)
    assert model.density_means.shape == (best, 2)
    assert model.density_scale_tril.shape == (best, 2, 2)

    gmm = GaussianMixture(best, covariance_type="full", random_state=0, reg_covar=1e-5).fit(train)
    lp = model.prior().log_prob(torch.as_tensor(test, dtype=torch.float32))
    np.testing.assert_allclose(lp.numpy(), gmm.score_samples(test), rtol=1e-4, atol=1e-4)
    assert model.prior().sample((10,)).shape == (10, 2)


# --- checkpoints --------------------------------------------------------------------------------

def _prepared(family: str, clustered_arrays) -> torch.nn.Module:
    model = make(family, latent_dim=2)
    model.init_output_bias(torch.from_numpy(clustered_arrays["x_train"]).float().mean(0) / 255)
    if family == "gmmvae":
        model.initialise_prior(three_blobs(300, 3), seed=0)
    return model


@pytest.mark.parametrize("family", ["nvae", "svae", "gmmvae", "ae", "ae-fitted"])
def test_save_load_round_trip(family, clustered_arrays, tmp_path):
    model = _prepared(family.split("-")[0], clustered_arrays)
    if family == "ae-fitted":
        model.fit_density(three_blobs(600, 0), three_blobs(300, 1), [1, 3], seed=0)
        assert model.density_components == 3
        model.proposal_scale.fill_(0.3)
    model.eval()
    path = tmp_path / "model.pt"
    save_model(model, path)

    payload = torch.load(path, weights_only=True)
    assert payload["model"] == model.name
    assert payload["kwargs"] == model.init_kwargs()
    loaded = load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.init_kwargs() == model.init_kwargs()
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key

    x = binary_batch(5)
    assert torch.equal(loaded.embed(x), model.embed(x))
    z = model.embed(x)
    assert torch.equal(loaded.decode(z), model.decode(z))
    assert torch.equal(loaded.prior().log_prob(z), model.prior().log_prob(z))
    if family == "ae-fitted":
        assert loaded.density_components == 3
        assert float(loaded.proposal_scale) == pytest.approx(0.3)
    if family == "gmmvae":
        torch.manual_seed(0)
        a = model.cluster(x)
        torch.manual_seed(0)
        assert torch.equal(loaded.cluster(x), a)


def test_svae_kl_is_the_registered_kl_to_its_prior():
    # SVAE.kl skips building the prior; it must be kl_divergence(q, prior) exactly, with gradients.
    model = build_model("svae", input_dim=6, latent_dim=4, hidden=[5])
    x = torch.bernoulli(torch.full((7, 6), 0.4), generator=torch.Generator().manual_seed(1))
    grads = []
    for kl in (lambda q: model.kl(q, None), lambda q: torch.distributions.kl_divergence(q, model.prior())):
        model.zero_grad()
        value = kl(model.posterior(x))
        value.sum().backward()
        grads.append((value.detach(), model.head.weight.grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])


def test_svae_loads_checkpoints_with_the_two_former_heads():
    # Before the heads were merged the S-VAE had loc_head (code_dim rows) and concentration_head
    # (one row); such a state dict loads into the one head and gives the same posterior.
    model = build_model("svae", input_dim=6, latent_dim=3, hidden=[5])
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    w, b = model.head.weight.detach(), model.head.bias.detach()
    old |= {"loc_head.weight": w[:-1].clone(), "loc_head.bias": b[:-1].clone(),
            "concentration_head.weight": w[-1:].clone(), "concentration_head.bias": b[-1:].clone()}
    loaded = build_model("svae", input_dim=6, latent_dim=3, hidden=[5])
    loaded.load_state_dict(old)
    x = torch.bernoulli(torch.full((4, 6), 0.4), generator=torch.Generator().manual_seed(0))
    q, p = model.posterior(x), loaded.posterior(x)
    assert torch.equal(q.loc, p.loc) and torch.equal(q.concentration, p.concentration)


def test_load_model_rejects_other_files(tmp_path):
    path = tmp_path / "not-a-model.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="not a vaepriors model"):
        load_model(path)


# --- S-VAE at d = 128 ---------------------------------------------------------------------------

def test_svae_trains_at_d128_without_nan(clustered_arrays):
    model = make("svae", latent_dim=128)
    assert model.code_dim == 129
    x_train = torch.from_numpy(clustered_arrays["x_train"]).float() / 255
    model.init_output_bias(x_train.mean(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    steps = 0
    for _ in range(4):
        xb = torch.bernoulli(x_train, generator=g)
        perm = torch.randperm(len(xb), generator=g)
        for start in range(0, len(xb), 64):
            terms = model.loss(xb[perm[start : start + 64]], beta=min(1.0, (steps + 1) / 20))
            for name, value in terms.items():
                assert torch.isfinite(value), (steps, name, value)
            opt.zero_grad()
            terms["loss"].backward()
            for name, param in model.named_parameters():
                assert torch.isfinite(param.grad).all(), (steps, name)
            opt.step()
            steps += 1
    assert steps >= 36
    q = model.posterior(xb[:100])
    assert torch.isfinite(q.concentration).all() and (q.concentration >= 1).all()
    assert terms["kl"] > 0


@pytest.mark.parametrize("name", ["nvae", "svae", "gmmvae"])
def test_glorot_initialisation_is_what_it_says(name):
    """model.init = glorot: every linear layer Glorot-uniform (bound sqrt(6 / (fan_in + fan_out))),
    every bias zero, the decoder's output bias included (no pixel means); torch: the pixel means."""
    from vaepriors.training.run import model_for

    pixel_mean = torch.full((64,), 0.2)
    torch.manual_seed(0)
    model = model_for(name, 3, 64, 4, {"hidden": [48, 32], "init": "glorot"})
    model.initialise("glorot", pixel_mean)
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert layers
    for layer in layers:
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # fills the interval
        assert abs(float(w.var()) - bound**2 / 3) < 0.25 * bound**2 / 3
        assert torch.count_nonzero(layer.bias) == 0
    torch.manual_seed(0)
    default = model_for(name, 3, 64, 4, {"hidden": [48, 32]})
    default.initialise("torch", pixel_mean)
    torch.testing.assert_close(default.decoder[-1].bias, torch.full((64,), math.log(0.2 / 0.8)))
    with pytest.raises(ValueError, match="model.init"):
        default.initialise("xavier", pixel_mean)


@pytest.mark.parametrize("layer, allowed", [
    ("kernels", {"kernels", "distributions"}),  # a compiled twin reads its definition's constants
    ("distributions", {"distributions", "kernels"}),
    ("models", {"distributions", "models", "families", "io", "kernels"}),
])
def test_dependencies_run_one_way(layer, allowed):
    # a family declares what the evaluation does for it (sphere, assigns_clusters, tuned_proposal):
    # the lower layers never import evaluation, training or figures
    import ast

    from vaepriors.config import REPO_ROOT

    for path in sorted((REPO_ROOT / "src/vaepriors" / layer).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name.split(".") for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ["vaepriors", layer][: 3 - node.level] if node.level else []
                module = [*base, *(node.module.split(".") if node.module else [])]
                modules = [module] if len(module) > 1 else [[*module, a.name] for a in node.names]
            else:
                continue
            for module in modules:
                if module[0] == "vaepriors":
                    assert module[1] in allowed, f"{path.name}:{node.lineno} imports {'.'.join(module)}"


def test_a_saved_model_is_the_same_bytes_whatever_the_temporary_file(tmp_path):
    # the archive inside torch's zip is named "archive", not after the atomic write's temporary,
    # so a retrained identical model changes no hash downstream (DVC, Snakemake checksums)
    import hashlib

    torch.manual_seed(0)
    model = build_model("svae", input_dim=20, latent_dim=2, hidden=[8])
    save_model(model, tmp_path / "a" / "model.pt")
    save_model(model, tmp_path / "b" / "model.pt")
    digest = [hashlib.sha256((tmp_path / x / "model.pt").read_bytes()).hexdigest() for x in "ab"]
    assert digest[0] == digest[1]
