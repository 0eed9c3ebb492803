"""model.decoder_hidden and model.likelihood: what they build, their identity in run values,
checkpoints, and the Gaussian likelihood's log-density and importance-sampled log-likelihood
against independent references (scipy; quadrature over a one-dimensional latent)."""

import json
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from vaepriors import families
from vaepriors.config import load_params, parse_values, run_values, values_json
from vaepriors.evaluation.loglik import importance_log_likelihood
from vaepriors.models import build_model, load_model, save_model
from vaepriors.models.base import SHARED_DEFAULTS
from vaepriors.models.likelihoods import get as get_likelihood

KWARGS = {"gmmvae": {"n_components": 3}, "vamp": {"n_pseudo_inputs": 4}}


def linear_sizes(module):
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_decoder_hidden_builds_what_it_says_and_defaults_to_the_mirror():
    model = build_model("nvae", input_dim=30, latent_dim=2, hidden=[16, 8], decoder_hidden=[64, 5, 7])
    assert linear_sizes(model.decoder) == [(2, 64), (64, 5), (5, 7), (7, 30)]
    assert linear_sizes(model.body) == [(30, 16), (16, 8)]  # the encoder is untouched
    mirror = build_model("nvae", input_dim=30, latent_dim=2, hidden=[16, 8])
    assert linear_sizes(mirror.decoder) == [(2, 8), (8, 16), (16, 30)]


@pytest.mark.parametrize("family", ["nvae", "svae", "gmmvae", "vamp", "ae"])
def test_default_settings_build_the_same_model_as_before(family):
    """Absent, or set to their defaults, the new settings give the same weights from the same
    seed, the same state-dict keys, and checkpoint kwargs without the new keys."""
    torch.manual_seed(0)
    before = build_model(family, input_dim=12, latent_dim=2, hidden=[6, 4], **KWARGS.get(family, {}))
    torch.manual_seed(0)
    explicit = build_model(family, input_dim=12, latent_dim=2, hidden=[6, 4], decoder_hidden=[4, 6],
                           likelihood="bernoulli", **KWARGS.get(family, {}))
    a, b = before.state_dict(), explicit.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not set(SHARED_DEFAULTS) & set(before.init_kwargs())


@pytest.mark.parametrize("family", ["nvae", "svae", "gmmvae", "vamp", "ae", "psvae", "lvae"])
def test_decoder_hidden_and_gaussian_likelihood_round_trip_through_checkpoints(family, tmp_path):
    torch.manual_seed(1)
    model = build_model(family, input_dim=12, latent_dim=2, hidden=[6, 4], decoder_hidden=[9],
                        likelihood="gaussian", **KWARGS.get(family, {}))
    with torch.no_grad():
        model.obs_log_scale.copy_(torch.linspace(-1, 1, 12))
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.decoder_hidden == [9] and loaded.likelihood.name == "gaussian"
    assert linear_sizes(loaded.decoder) == linear_sizes(model.decoder)
    x = torch.randn(5, 12)
    z = torch.randn(5, model.code_dim)
    torch.testing.assert_close(loaded.reconstruction(loaded.decode(z), x),
                               model.reconstruction(model.decode(z), x), rtol=0, atol=0)


def test_from_config_reads_the_settings():
    cfg = load_params()["model"]
    for name in families.names():
        model = families.get(name).from_config(2, 20, 3, {**cfg, "decoder_hidden": [7, 11],
                                                          "likelihood": "gaussian", "vamp_components": 4})
        assert linear_sizes(model.decoder)[:2] == [(model.code_dim, 7), (7, 11)], name
        assert model.likelihood.name == "gaussian", name


def test_run_values_leave_finished_runs_alone():
    """A default decoder and likelihood, absent or written out, give the run values (and the
    JSON the rules compare) of before; another value joins them and is accepted back."""
    cfg = load_params()
    cfg["model"].pop("decoder_hidden", None)
    cfg["model"].pop("likelihood", None)
    written = json.loads(json.dumps(cfg))
    written["model"].update(decoder_hidden=[], likelihood="bernoulli")
    for family in families.names():
        before = values_json(run_values(cfg, "train", family))
        assert values_json(run_values(written, "train", family)) == before
        assert not set(SHARED_DEFAULTS) & set(run_values(cfg, "train", family)["model"])
        parse_values(before, "train", family)  # finished runs' settings stay valid
        changed = json.loads(json.dumps(cfg))
        changed["model"].update(decoder_hidden=[64], likelihood="gaussian")
        values = run_values(changed, "train", family)
        assert values["model"]["decoder_hidden"] == [64] and values["model"]["likelihood"] == "gaussian"
        assert parse_values(values_json(values), "train", family) == values


def test_gaussian_log_density_matches_scipy_and_torch():
    model = build_model("nvae", input_dim=4, latent_dim=1, hidden=[3], likelihood="gaussian")
    with torch.no_grad():
        model.obs_log_scale.copy_(torch.tensor([-1.0, 0.0, 0.5, -2.0]))
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        got = get_likelihood("gaussian").log_prob(model, mean, x)
    sigma = model.obs_log_scale.detach().double().exp()
    ref = scipy.stats.norm.logpdf(x.numpy(), mean.numpy(), sigma.numpy()).sum(-1)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    torch_ref = torch.distributions.Normal(mean, sigma).log_prob(x).sum(-1)
    torch.testing.assert_close(got, torch_ref)
    # the training loss is the same density
    torch.testing.assert_close(model.reconstruction(mean.float(), x.float()), -got.float())


def _quadrature(model, x, z, log_w):
    """log p(x) = log sum_nodes p(x|z) p(z) weight over the nodes z (G, code_dim)."""
    with torch.no_grad():
        out = model.decode(z.float()).double()  # (G, D)
        log_lik = model.likelihood.log_prob(model, out[:, None, :], x.double())  # (G, N)
    return torch.logsumexp(log_lik + log_w[:, None], 0)


@pytest.mark.parametrize("family", ["nvae", "svae"])
def test_importance_log_likelihood_matches_quadrature_for_continuous_data(family):
    """A tiny Gaussian-likelihood model with a one-dimensional latent (R^1, or S^1 in R^2): its
    log p(x) by quadrature, against importance_log_likelihood with the model's own proposal."""
    torch.manual_seed(3)
    model = build_model(family, input_dim=3, latent_dim=1, hidden=[8], likelihood="gaussian").eval()
    with torch.no_grad():
        model.obs_log_scale.fill_(math.log(0.7))
    if model.sphere:
        n = 4000
        theta = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
        z, log_w = torch.stack([theta.cos(), theta.sin()], -1), torch.full((n,), -math.log(n))
    else:
        z = torch.linspace(-9, 9, 20001, dtype=torch.float64)[:, None]
        log_w = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 0]) + math.log(float(z[1] - z[0]))
    with torch.no_grad():
        x = model.decode(torch.randn(4, model.code_dim)) + 0.5 * torch.randn(4, 3)
    exact = _quadrature(model, x, z, log_w)
    est = importance_log_likelihood(model, x.repeat(20, 1), 2000, 10**7,
                                    torch.Generator().manual_seed(0)).view(20, -1)
    gap = est - exact
    assert gap.mean(0).abs().max() < 0.02, gap.mean(0)
    # K = 1 is the ELBO in expectation: clearly below
    low = importance_log_likelihood(model, x.repeat(200, 1), 1, 10**7,
                                    torch.Generator().manual_seed(1)).view(200, -1)
    assert bool(((low - exact).mean(0) < 0).all())


def test_a_likelihood_that_does_not_fit_the_data_is_refused():
    from vaepriors.training.trainer import TrainData

    points = TrainData(torch.randn(10, 4), torch.randn(5, 4), binary=False)
    with pytest.raises(ValueError, match="model.likelihood: 'bernoulli' does not fit continuous points"):
        points.check_likelihood(build_model("nvae", input_dim=4, latent_dim=1, hidden=[3]))
    images = TrainData(torch.rand(10, 4), torch.rand(5, 4).round())
    with pytest.raises(ValueError, match="set model.likelihood to bernoulli"):
        images.check_likelihood(build_model("nvae", input_dim=4, latent_dim=1, hidden=[3], likelihood="gaussian"))
    # continuous points are observed as they are: no draw, only a new order
    x, order = points.epoch(torch.Generator().manual_seed(0))
    assert x is points.x_train and sorted(order.tolist()) == list(range(10))
