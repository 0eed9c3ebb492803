"""Training on a GPU (train.device auto picks CUDA where torch sees one): every family trains there,
its model.pt evaluates on a CPU-only machine, a seed gives the same run twice, stacked seeds end
as each seed alone, and a killed group resumes to the same result. The vMF sampler's torch path
(the compiled one is CPU-only) is checked against scipy there. Skipped on machines without CUDA,
CI's included (benchmarks/README.md, "A GPU against one CPU thread", says how to run it)."""

from __future__ import annotations

import json
import math

import pytest
import scipy.stats
import torch
from scipy.special import ive
from test_multiseed import assert_identical_runs, assert_killed_group_resumes, history, run_both

from vaepriors import families
from vaepriors.distributions import VonMisesFisher
from vaepriors.evaluation.run import evaluate_run
from vaepriors.training.run import train_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# spherical families at S^3, where the vMF draws through Wood's rejection sampler (S^2 has a closed form)
LATENT = {"svae": 3, "psvae": 3}


@pytest.fixture
def cuda_cfg(train_cfg):
    return {**train_cfg, "device": "cuda", "max_epochs": 3}


@pytest.mark.parametrize("family", families.names())
def test_each_family_trains_on_cuda_and_evaluates_on_a_cpu(family, processed_npz, cuda_cfg, model_cfg,
                                                          eval_cfg, tmp_path):
    out = tmp_path / family
    record = train_run(processed_npz, out, "synthetic", family, LATENT.get(family, 2), 0, cuda_cfg,
                       model_cfg, progress=False)
    assert json.loads((out / "config.json").read_text())["meta"]["device"].startswith("cuda")
    assert math.isfinite(record["best_val_elbo"])
    # the artifact is portable: a machine without CUDA reads it with a plain torch.load
    state = torch.load(out / "model.pt", weights_only=True, map_location=None)
    assert {t.device.type for t in state["state_dict"].values()} == {"cpu"}
    metrics = evaluate_run(out / "model.pt", processed_npz, 0, eval_cfg, progress=False)
    assert math.isfinite(metrics["loglik"]["mean"]) and metrics["loglik"]["mean"] < 0


@pytest.mark.parametrize("family", ["nvae", "svae", "gmmvae", "vamp"])
def test_same_seed_same_cuda_run(family, processed_npz, cuda_cfg, model_cfg, tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for out in dirs:
        train_run(processed_npz, out, "synthetic", family, LATENT.get(family, 2), 4, cuda_cfg, model_cfg,
                  progress=False)
    assert_identical_runs(dirs[:1], dirs[1:])


@pytest.mark.parametrize("family,latent", [("nvae", 2), ("svae", 3), ("vamp", 2)])
def test_stacked_seeds_on_cuda_match_single_seed_runs(family, latent, processed_npz, cuda_cfg, model_cfg,
                                                      tmp_path):
    dirs = run_both(family, latent, [0, 1, 5], processed_npz, cuda_cfg, model_cfg, tmp_path)
    assert not history(dirs[0]).equals(history(dirs[1]))


def test_killed_cuda_group_resumes_to_the_same_result(processed_npz, cuda_cfg, model_cfg, tmp_path,
                                                      monkeypatch):
    """The checkpoint carries each seed's CUDA generator state as well as its CPU one."""
    assert_killed_group_resumes("svae", processed_npz, cuda_cfg, model_cfg, tmp_path, monkeypatch)


@pytest.mark.parametrize("m", [3, 11, 129])
@pytest.mark.parametrize("kappa", [0.5, 30.0, 1e4])
def test_vmf_on_cuda_matches_scipy(m, kappa):
    torch.manual_seed(0)
    mu = torch.randn(m, dtype=torch.float64)
    mu = (mu / mu.norm()).cuda()
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64, device="cuda"))
    n = 100_000
    z = q.rsample((n,))
    assert z.device.type == "cuda" and (z.norm(dim=-1) - 1).abs().max() < 1e-9
    w = (z @ mu).cpu()
    a_m = ive(m / 2, kappa) / ive(m / 2 - 1, kappa)
    assert abs(w.mean().item() - a_m) < 5 * w.std().item() / math.sqrt(n)
    ref = scipy.stats.vonmises_fisher(mu.cpu().numpy(), kappa)
    torch.testing.assert_close(q.log_prob(z[:50]).cpu(), torch.from_numpy(ref.logpdf(z[:50].cpu().numpy())),
                               rtol=1e-9, atol=1e-8)
