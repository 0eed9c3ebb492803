"""Importance-sampled test log-likelihood, test ELBO and active units.

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,   z_k ~ q(z|x)

Its expectation is a lower bound on log p(x) (Jensen) that tightens as K grows (Burda et al. 2015).
log p(x|z) comes from the decoder's Bernoulli logits (for binary x, -sum_j softplus((1 - 2 x_j) l_j),
per pixel in float32 without cancellation, summed in float32 groups of 16 and then in float64);
every log-weight is formed and combined in float64. A model whose likelihood is not the Bernoulli
one (``model.likelihood.binary`` false: the Gaussian of continuous data) scores its decoder output
with ``model.likelihood.log_prob``, summed in float64.

Sampling is organised so that the estimate does not depend on the chunking: the K samples are drawn
in blocks whose size depends only on (N, code_dim, K); each block has its own seed, drawn up front
from ``generator`` (or torch's global generator), and is drawn for all N points at once under that
seed. The decoder then works through each block in chunks of at most ``chunk_elements`` logits. A
point therefore receives the same K samples whatever ``chunk_elements`` is; only the float rounding
of the partial sums can differ. The global RNG state is restored afterwards (apart from the block
seeds drawn from it when ``generator`` is None).

Memory: the decoded logits of one chunk hold at most ``chunk_elements`` values (points x samples x
pixels); a sample block holds at most max(SAMPLE_BLOCK_ELEMENTS, N x code_dim) code values, and
the encoder runs once over all N points. Peak memory is a small multiple of one chunk.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import kernels
from ..models.base import LatentVariableModel, embed_all
from ..threads import flush_denormals

# Seeds for torch.manual_seed; any non-negative int64 works, this keeps them clear of overflow.
_SEED_HIGH = 2**62
# Bound on the codes drawn at once (samples x points x code_dim): a few MB, small beside a chunk of
# decoded pixels, and large enough that the per-block Python overhead is negligible.
SAMPLE_BLOCK_ELEMENTS = 2**20
# On CPU a chunk is decoded a block of codes at a time, each block's logits (4 MB) turned into
# log-likelihoods while they are still in cache, instead of streaming a whole chunk through memory
# once per elementwise pass; smaller blocks lose to GEMM edge effects (benchmarks/README.md).
CPU_BLOCK_ELEMENTS = 2**20

log = logging.getLogger(__name__)


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _forked_rng(device: torch.device):
    """Context in which reseeding torch's RNG leaves the caller's RNG state untouched."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _draw_seed(generator: torch.Generator | None) -> int:
    return int(torch.randint(_SEED_HIGH, (1,), generator=generator))


def _as_float(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def chunk_plan(
    n_points: int, n_samples: int, n_pixels: int, chunk_elements: int
) -> tuple[int, int]:
    """(points per chunk, samples per chunk) with points x samples x pixels <= chunk_elements.

    All points share a chunk when they fit, and the remaining budget buys samples; otherwise each
    chunk takes one sample for as many points as fit. Either way the decoder sees about
    chunk_elements / pixels codes per call, the most the budget allows.
    """
    if chunk_elements < n_pixels:
        raise ValueError(f"chunk_elements={chunk_elements} is below one image ({n_pixels} pixels)")
    points = min(n_points, chunk_elements // n_pixels)
    samples = min(n_samples, chunk_elements // (points * n_pixels))
    return points, samples


def sample_block_size(n_points: int, code_dim: int, n_samples: int) -> int:
    """Samples per seeded block: as many as keep block x points x code_dim <= SAMPLE_BLOCK_ELEMENTS.

    It depends on N, code_dim and K only, never on chunk_elements, so every chunking sees the
    same blocks and hence the same samples."""
    return max(1, min(n_samples, SAMPLE_BLOCK_ELEMENTS // (n_points * code_dim)))


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) summed over pixels in float64; ``x`` (P, D) broadcasts over leading sample dims."""
    signs = _binary_signs(x)
    total = _neg_log_likelihood_(logits.clone(), x, signs)
    return -_redo_overflowed_(total, x, signs, lambda index: logits[index])


def _binary_signs(x: torch.Tensor) -> torch.Tensor | None:
    """1 - 2x when every x is 0 or 1, else None."""
    return 1 - 2 * x if bool(((x == 0) | (x == 1)).all()) else None


# Pixel terms are summed in float32 in groups of this many, and the group sums in float64.
_PIXEL_GROUP = 16


def _neg_log_likelihood_(logits: torch.Tensor, x: torch.Tensor, signs: torch.Tensor | None):
    """-log p(x|z) summed over pixels, float64; overwrites ``logits``.

    Binary x (``signs`` = 1 - 2x): each pixel's -log p is softplus(sign * logit), formed without
    the cancellation of the BCE form, as log1p(exp(.)) in place: two vectorised passes that together
    cost less than torch's softplus kernel. exp overflows float32 only for a
    value above ~88.7, where the pixel's true -log p is that value; such a sum comes out +inf, and
    _redo_overflowed_ recomputes it with the stable softplus. Pixels are summed in float32 in
    groups of 16, the groups in float64. Against float64 arithmetic on the same logits this is at
    least as accurate as BCE summed in float64 (max error ~2e-6 vs 8e-6 nats at D = 784)."""
    if signs is None:
        bce = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        return bce.sum(-1, dtype=torch.float64)
    return _pixel_sum(logits.mul_(signs).exp_().log1p_())


def _redo_overflowed_(total: torch.Tensor, x: torch.Tensor, signs, logits_at) -> torch.Tensor:
    """``total`` from _neg_log_likelihood_ with its +inf sums (exp overflowed) recomputed through
    torch's overflow-safe softplus; ``logits_at(index)`` gives the logits of those sums (index as
    from nonzero(as_tuple=True)). In place; the rare case, so its cost does not matter."""
    overflowed = total.isinf()
    if signs is None or not bool(overflowed.any()):
        return total
    index = overflowed.nonzero(as_tuple=True)
    x = x.expand(total.shape + x.shape[-1:])[index]
    total[index] = _pixel_sum(F.softplus(logits_at(index) * (1 - 2 * x))).to(total.device)
    return total


def _pixel_sum(terms: torch.Tensor) -> torch.Tensor:
    """Float64 sums over the last dimension of float32 ``terms``: strided groups of _PIXEL_GROUP
    summed in float32 (vertical adds, no conversion pass), the group sums in float64."""
    d = terms.shape[-1]
    groups = min(_PIXEL_GROUP, d)
    width = d // groups
    body = groups * width
    total = terms[..., :body].unflatten(-1, (groups, width)).sum(-2).sum(-1, dtype=torch.float64)
    if body < d:
        total += terms[..., body:].sum(-1, dtype=torch.float64)
    return total


def _own_likelihood(model):
    """The model's likelihood where it is not the Bernoulli one this module computes, else None."""
    likelihood = getattr(model, "likelihood", None)
    return None if likelihood is None or likelihood.binary else likelihood


def _log_likelihood(model, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) from decoder outputs ``out`` (..., P, D), float64."""
    own = _own_likelihood(model)
    if own is None:
        return bernoulli_log_likelihood(out, x)
    return own.log_prob(model, out.double(), x.double())


def _decoded_log_likelihood(model, z: torch.Tensor, x: torch.Tensor, signs, kernel=None) -> torch.Tensor:
    """log p(x|z) of codes z (S, P, code_dim) for points x (P, D): (S, P), float64. ``kernel`` (an
    amx.DecoderNLL, for binary x on the CPU) replaces the decoder and the softplus passes."""
    if _own_likelihood(model) is not None:
        return _log_likelihood(model, model.decode(z), x)
    s, p = z.shape[:2]
    if kernel is not None:
        return kernel(z.reshape(s * p, -1), signs).view(s, p).neg_()
    if z.device.type != "cpu":
        out = _neg_log_likelihood_(model.decode(z), x, signs)
    else:
        rows = max(1, CPU_BLOCK_ELEMENTS // x.shape[-1])  # codes per decoder call
        out = torch.empty(s, p, dtype=torch.float64)
        if p >= rows:
            rows = math.ceil(p / math.ceil(p / rows))  # equal parts: no small remainder GEMM
            for i in range(s):
                for j in range(0, p, rows):
                    part = slice(j, j + rows)
                    out[i, part] = _neg_log_likelihood_(
                        model.decode(z[i, part]), x[part], None if signs is None else signs[part]
                    )
        else:
            step = rows // p
            for i in range(0, s, step):
                out[i : i + step] = _neg_log_likelihood_(model.decode(z[i : i + step]), x, signs)
    return _redo_overflowed_(out, x, signs, lambda index: model.decode(z[index])).neg_()


def _unsuitable(model: torch.nn.Module, x: torch.Tensor) -> str | None:
    """Why a compiled decoder kernel cannot stand in for this module's Bernoulli term, or None."""
    if x.device.type != "cpu":
        return f"the data are on {x.device}"
    if _own_likelihood(model) is not None:
        return "the model's likelihood is not Bernoulli"
    if _binary_signs(x) is None:
        return "the data are not binary"
    if not (isinstance(model, LatentVariableModel) and type(model).decode is LatentVariableModel.decode):
        return "the model decodes with more than its decoder stack"
    return None


def decoder_kernel(model: torch.nn.Module, x: torch.Tensor, kernel: str = "auto"):
    """The compiled kernel that scores ``model``'s codes against binary ``x`` (vaepriors.kernels
    chooses: "torch", "amx" or "auto"), or None for torch."""
    return kernels.decoder_nll(getattr(model, "decoder", None), kernel, _unsuitable(model, x))


def decoder_kernel_name(model: torch.nn.Module, x: torch.Tensor, kernel: str = "auto") -> str:
    """What importance_log_likelihood(..., kernel=kernel) computes the decoder with, for the record."""
    return (kernels.decoder_name(getattr(model, "decoder", None), kernel, _unsuitable(model, x))
            or f"torch-{str(x.dtype).split('.')[-1]}")


@torch.no_grad()
@flush_denormals()
def importance_log_likelihood(
    model: torch.nn.Module,
    x: torch.Tensor,
    n_samples: int,
    chunk_elements: int,
    generator: torch.Generator | None = None,
    progress: bool = False,
    kernel: str = "auto",
) -> torch.Tensor:
    """Per-point importance-sampled log p(x) in nats: float64 tensor of shape (N,) on the CPU.

    ``x`` (N, D) in {0, 1}, on the model's device. ``generator`` (a CPU torch.Generator) fixes
    the samples; without it they follow torch's global seed. ``kernel`` chooses how the decoder
    is evaluated (see decoder_kernel): on a CPU with AMX, "auto" takes the AMX kernel, whose
    log p(x|z) differs from torch's float32 by ~1e-4 nats."""
    x = _as_float(x)
    n, d = x.shape
    block = sample_block_size(n, model.code_dim, n_samples)
    points, samples = chunk_plan(n, block, d, chunk_elements)
    block_sizes = [min(block, n_samples - start) for start in range(0, n_samples, block)]
    seeds = torch.randint(_SEED_HIGH, (len(block_sizes),), generator=generator).tolist()
    point_starts = range(0, n, points)
    n_chunks = sum(math.ceil(b / samples) for b in block_sizes) * len(point_starts)
    log_sum = torch.full((n,), -math.inf, dtype=torch.float64)
    signs = _binary_signs(x)
    fast = decoder_kernel(model, x, kernel)
    with (
        _eval_mode(model),
        _forked_rng(x.device),
        tqdm(total=n_chunks, disable=not progress, desc="log-likelihood", unit="chunk") as bar,
    ):
        posterior, prior = model.posterior(x), model.prior()
        for seed, size in zip(seeds, block_sizes):
            torch.manual_seed(seed)
            z = posterior.sample((size,))  # (size, N, code_dim)
            log_ratio = prior.log_prob(z).double() - posterior.log_prob(z).double()
            for s0 in range(0, size, samples):
                for p0 in point_starts:
                    rows = slice(p0, p0 + points)
                    log_w = _decoded_log_likelihood(
                        model, z[s0 : s0 + samples, rows], x[rows],
                        None if signs is None else signs[rows], fast,
                    ).to(log_ratio.device) + log_ratio[s0 : s0 + samples, rows]
                    # Partial logsumexps combine exactly: lse(a ∪ b) = logaddexp(lse(a), lse(b)).
                    log_sum[rows] = torch.logaddexp(log_sum[rows], torch.logsumexp(log_w, 0).cpu())
                    bar.update()
    return log_sum - math.log(n_samples)


@torch.no_grad()
def shared_sample_log_likelihood(
    model: torch.nn.Module,
    x: torch.Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    batch_size: int = 200,
) -> torch.Tensor:
    """Per-point "log-likelihood" as the S-VAE authors' TensorFlow example computes it: a
    DIAGNOSTIC, not an estimate of log p(x) (the headline is importance_log_likelihood).

        log p(x|z_0) + logsumexp_k [log p(z_k) - log q(z_k|x)] - log K,   z_0, z_k ~ q(z|x)

    One decoder sample z_0 serves all K importance samples: only the prior/posterior ratio is
    importance-weighted, so the second term estimates log 1 = 0 (from below) instead of
    subtracting the KL, and the value sits above the ELBO by an amount that does not depend on
    the decoder. Float64 log-weights; (N,) on the CPU."""
    x = _as_float(x)
    seed = _draw_seed(generator)
    out = []
    with _eval_mode(model), _forked_rng(x.device):
        torch.manual_seed(seed)
        prior = model.prior()
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            posterior = model.posterior(batch)
            z0 = posterior.sample()
            rec = _log_likelihood(model, model.decode(z0), batch).double()
            z = posterior.sample((n_samples,))
            log_ratio = prior.log_prob(z).double() - posterior.log_prob(z).double()
            out.append((rec + torch.logsumexp(log_ratio, 0) - math.log(n_samples)).cpu())
    return torch.cat(out)


@torch.no_grad()
def elbo_terms(
    model: torch.nn.Module,
    x: torch.Tensor,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Test ELBO and its parts (nats, averaged over points) from model.loss(x, beta=1).

    model.loss draws one posterior sample per point; it runs under a seed drawn from ``generator``.
    """
    x = _as_float(x)
    totals = {"elbo": 0.0, "rec": 0.0, "kl": 0.0}
    seed = _draw_seed(generator)
    with _eval_mode(model), _forked_rng(x.device):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            out = model.loss(batch, beta=1.0)
            for key in totals:
                totals[key] += float(out[key]) * len(batch)
    return {key: value / len(x) for key, value in totals.items()}


@torch.no_grad()
def posterior_means(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """model.embed over ``x`` in batches: (N, code_dim) float64 array for clustering and k-NN."""
    with _eval_mode(model):
        return embed_all(model, _as_float(x), batch_size)


def active_units(
    model: torch.nn.Module, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000
) -> int:
    """Latent dimensions whose posterior mean varies across the data: Var_x(E_q[z_j]) > threshold
    (Burda et al. 2015). Counted over the code_dim coordinates of model.embed."""
    variance = posterior_means(model, x, batch_size).var(axis=0)
    return int((variance > threshold).sum())


def _set_proposal_scale(model: torch.nn.Module, scale: float) -> None:
    # A registered buffer only accepts tensors; keep its dtype and device.
    current = model.proposal_scale
    if isinstance(current, torch.Tensor):
        scale = torch.as_tensor(scale, dtype=current.dtype, device=current.device)
    model.proposal_scale = scale


# The proposal scale is chosen on this many validation points with this many samples: a ranking
# of a handful of candidates, not a reported number, so it need not cost a full evaluation.
SCALE_POINTS = 1000
SCALE_SAMPLES = 100


def prepare_proposal(model: torch.nn.Module, x_val: torch.Tensor, cfg: dict, seed: int,
                     kernel: str = "auto") -> dict:
    """A family with a tuned proposal (the AE): its scale chosen on validation, before the test
    log-likelihood uses it. Returns the metrics keys it adds ({} for the others)."""
    if not model.tuned_proposal:
        return {}
    scale, scores = choose_ae_proposal_scale(
        model, x_val[:SCALE_POINTS], cfg["ae_scale_grid"], min(cfg["importance_samples"], SCALE_SAMPLES),
        cfg["chunk_elements"], generator=torch.Generator().manual_seed(seed), kernel=kernel)
    log.info("%s proposal scale %.3g (validation scores %s)", model.name, scale, scores)
    return {"ae_proposal": {"scale": scale, "validation_loglik": {str(k): v for k, v in scores.items()},
                            "note": model.bound_note}}


def choose_ae_proposal_scale(
    model: torch.nn.Module,
    x_val: torch.Tensor,
    scales: Sequence[float],
    n_samples: int,
    chunk_elements: int,
    generator: torch.Generator | None = None,
    progress: bool = False,
    kernel: str = "auto",
) -> tuple[float, dict[float, float]]:
    """Set the AE proposal std s (q(z|x) = N(enc(x), s^2 I)) to the candidate with the highest mean
    validation log-likelihood. Every candidate is scored with the same seeds (common random numbers),
    so the comparison is not decided by sampling noise. Returns (chosen s, {s: mean log-likelihood})."""
    seed = _draw_seed(generator)
    scores: dict[float, float] = {}
    for scale in scales:
        _set_proposal_scale(model, float(scale))
        loglik = importance_log_likelihood(
            model, x_val, n_samples, chunk_elements, torch.Generator().manual_seed(seed), progress, kernel
        )
        scores[float(scale)] = float(loglik.mean())
    best = max(scores, key=scores.get)
    _set_proposal_scale(model, best)
    return best, scores
