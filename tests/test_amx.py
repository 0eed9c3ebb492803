"""The AMX decoder kernel (bf16x3 GEMMs + fused softplus sums) against float64 arithmetic.

Runs where the CPU has AMX-BF16 (this project's CI machine does); elsewhere the kernel is never
chosen and these tests are skipped, saying why."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vaepriors.evaluation import loglik
from vaepriors.kernels import amx
from vaepriors.models import build_model
from vaepriors.models.networks import mlp

WHY = amx.unavailable_reason()
needs_amx = pytest.mark.skipif(WHY is not None, reason=f"AMX kernel unavailable: {WHY}")


def _reference_nll(decoder, z, x):
    """-log p(x|z) in float64 from a float64 copy of the decoder."""
    dec = mlp([decoder[0].in_features] + [m.out_features for m in decoder[::2]], final_activation=False).double()
    dec.load_state_dict({k: v.double() for k, v in decoder.state_dict().items()})
    with torch.no_grad():
        logits = dec(z.double())
    return F.binary_cross_entropy_with_logits(logits, x.double().expand_as(logits), reduction="none").sum(-1)


def _decoder(sizes, seed=0, scale=3.0):
    """A decoder with trained-looking weights: larger than the default init, so logits reach +-20."""
    torch.manual_seed(seed)
    dec = mlp(sizes, final_activation=False)
    with torch.no_grad():
        for lin in dec[::2]:
            lin.weight.mul_(scale)
            lin.bias.normal_(0, 1)
    return dec


@needs_amx
@pytest.mark.parametrize("sizes, rows, period", [
    ([10, 128, 256, 784], 1337, 1337),  # the protocol's decoder, one code per point
    ([3, 100, 50, 70], 77, 11),         # nothing a multiple of 16 or 32; 7 samples of 11 points
    ([5, 64], 600, 600),                # one layer; more rows than one kernel block (512)
    ([40, 33, 1, 17], 45, 45),          # a hidden width of 1
])
def test_kernel_matches_float64(sizes, rows, period):
    dec = _decoder(sizes)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(rows, sizes[0], generator=g)
    x = torch.bernoulli(torch.full((period, sizes[-1]), 0.3), generator=g)
    got = amx.DecoderNLL(dec)(z, 1 - 2 * x)
    want = _reference_nll(dec, z, x[torch.arange(rows) % period])
    assert got.dtype == torch.float64 and got.shape == (rows,)
    # bf16x3 keeps ~16 bits per operand: per-code error ~1e-4 nats where torch float32 has ~1e-5.
    err = (got - want).abs()
    scale = want.abs().clamp_min(1.0)
    assert float((err / scale).max()) < 2e-5, float(err.max())


@needs_amx
def test_extreme_logits_stay_finite_and_exact():
    """softplus is formed as max(u, 0) + log(1 + exp(-|u|)): logits of +-1000 neither overflow
    (torch's exp path needs a redo there) nor lose the linear part."""
    dec = _decoder([4, 32, 20], scale=1.0)
    with torch.no_grad():
        dec[-1].bias[:10] = 1000.0
        dec[-1].bias[10:] = -1000.0
    z = torch.randn(50, 4)
    x = torch.bernoulli(torch.full((50, 20), 0.5))
    got = amx.DecoderNLL(dec)(z, 1 - 2 * x)
    want = _reference_nll(dec, z, x)
    assert torch.isfinite(got).all()
    assert float(((got - want).abs() / want).max()) < 1e-5


@needs_amx
def test_nan_propagates_as_in_torch():
    """A diverged model must not get a finite log-likelihood: NaN in a code gives NaN for that code
    only, NaN in a weight NaN for every code (vmaxps drops a NaN first operand; the kernel puts it
    second)."""
    dec = _decoder([4, 32, 16, 20])
    z = torch.randn(40, 4)
    signs = 1 - 2 * torch.bernoulli(torch.full((40, 20), 0.5))
    z[3, 1] = float("nan")
    got = amx.DecoderNLL(dec)(z, signs)
    assert got[3].isnan() and torch.isfinite(got[torch.arange(40) != 3]).all()
    with torch.no_grad():
        dec[2].weight[5, 7] = float("nan")
    assert amx.DecoderNLL(dec)(z, signs).isnan().all()


def test_mismatched_layer_widths_are_not_taken():
    """The kernel never runs torch's shape checks: a decoder whose widths do not chain is refused."""
    assert amx.mlp_linears(mlp([3, 50, 20], final_activation=False)) is not None
    broken = torch.nn.Sequential(torch.nn.Linear(3, 50), torch.nn.ReLU(), torch.nn.Linear(60, 20))
    assert amx.mlp_linears(broken) is None


@needs_amx
def test_empty_and_signless_calls():
    kernel = amx.DecoderNLL(_decoder([4, 16, 20]))
    assert kernel(torch.zeros(0, 4), torch.ones(3, 20)).shape == (0,)
    with pytest.raises(ValueError, match="no signs rows"):
        kernel(torch.zeros(5, 4), torch.ones(0, 20))


@needs_amx
def test_threads_split_rows_without_changing_a_bit():
    """Each code's result depends on its own row only: 1 or 3 threads, any share boundaries, any
    period, give identical float64 values."""
    dec = _decoder([6, 48, 96, 50])
    z = torch.randn(2000, 6)
    signs = 1 - 2 * torch.bernoulli(torch.full((300, 50), 0.4))
    kernel = amx.DecoderNLL(dec)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = kernel(z, signs)
        torch.set_num_threads(3)
        three = kernel(z, signs)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)
    assert torch.equal(kernel(z[700:900], torch.roll(signs, -100, 0)), one[700:900])


@needs_amx
@pytest.mark.parametrize("name", ["nvae", "svae", "gmmvae", "ae"])
def test_importance_log_likelihood_amx_vs_torch(name):
    torch.manual_seed(0)
    extra = {"n_components": 4} if name == "gmmvae" else {}
    model = build_model(name, input_dim=64, latent_dim=3, hidden=[32, 16], **extra)
    x = torch.bernoulli(torch.full((40, 64), 0.3))
    assert loglik.decoder_kernel_name(model, x) == amx.NAME
    assert loglik.decoder_kernel_name(model, x, "torch") == "torch-float32"
    run = lambda kernel, chunk: loglik.importance_log_likelihood(  # noqa: E731
        model, x, 30, chunk, generator=torch.Generator().manual_seed(3), kernel=kernel)
    fast, slow = run("amx", 10**6), run("torch", 10**6)
    assert float((fast - slow).abs().max()) < 1e-3
    assert torch.equal(fast, run("auto", 10**6))
    # Chunking moves no sample; only the rounding of the partial logsumexps can change.
    torch.testing.assert_close(fast, run("amx", 64 * 7), rtol=0, atol=1e-9)


def test_kernel_choice_and_its_errors(monkeypatch):
    torch.manual_seed(0)
    model = build_model("nvae", input_dim=20, latent_dim=2, hidden=[8])
    x = torch.bernoulli(torch.full((5, 20), 0.5))
    with pytest.raises(ValueError, match="'fast'"):
        loglik.decoder_kernel(model, x, "fast")
    assert loglik.decoder_kernel(model, x, "torch") is None
    assert loglik.decoder_kernel(model, x * 0.5, "auto") is None  # grey data: torch's BCE
    with pytest.raises(RuntimeError, match="not binary"):
        loglik.decoder_kernel(model, x * 0.5, "amx")
    monkeypatch.setattr(amx, "unavailable_reason", lambda: "the CPU lacks amx_bf16")
    assert loglik.decoder_kernel(model, x, "auto") is None
    assert loglik.decoder_kernel_name(model, x) == "torch-float32"
    with pytest.raises(RuntimeError, match="cannot run: the CPU lacks amx_bf16"):
        loglik.decoder_kernel(model, x, "amx")


@needs_amx
def test_build_goes_to_the_cache_once(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEPRIORS_CACHE", str(tmp_path))
    built = amx._build()
    assert built.parent == tmp_path and built.suffix == ".so"
    stamp = built.stat().st_mtime_ns
    assert amx._build() == built and built.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no temporary left behind


def test_a_failing_compiler_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEPRIORS_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    with pytest.raises(RuntimeError, match="false could not build amx_kernels.c"):
        amx._build()
    assert list(tmp_path.iterdir()) == []
