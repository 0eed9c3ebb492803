"""Compiled twins of torch definitions elsewhere in the package, and the one place that chooses
them. Speed is their only reason: each computes what its definition computes, up to float
rounding, and is tested against it over a grid (tests/test_vmf.py, tests/test_amx.py).

- ``vmf`` (numba, compiled on first use): the per-row vMF maths of distributions/vmf.py (``_Torch``:
  bessel.py's Bessel values, Wood's acceptance step, the map to the sphere with dw/dkappa and its
  backward, the entropy) and the S-VAE head of models/spherical.py, for CPU tensors.
- ``amx`` (C, built on first use): evaluation/loglik.py's Bernoulli -log p(x|z) of an MLP decoder
  on CPUs with Intel AMX ("bf16x3", ~1e-4 nats from float32), in evaluation only.
"""

from __future__ import annotations

import torch
from torch import nn

# False: every caller takes its torch definition (tests compare the two paths)
COMPILED = True
DECODER_KERNELS = ("auto", "amx", "torch")


_vmf_host = None  # kernels.vmf.Host once imported: several calls per training step


def vmf_math(tensor: torch.Tensor):
    """The compiled vMF maths (kernels.vmf.Host) for a CPU tensor, else None (the torch definition)."""
    global _vmf_host
    if not (COMPILED and tensor.device.type == "cpu"):
        return None
    if _vmf_host is None:
        from . import vmf  # numba adds ~55 MB and ~0.5 s to a process, which only vMF work needs

        _vmf_host = vmf.Host
    return _vmf_host


def _amx_reason(decoder: nn.Module, kernel: str, unsuitable: str | None) -> str | None:
    """Why the AMX kernel will not score ``decoder``'s output, or None when it will."""
    if kernel not in DECODER_KERNELS:
        raise ValueError(f"decoder kernel {kernel!r} is not one of {', '.join(DECODER_KERNELS)}")
    if kernel == "torch":
        return "torch was asked for"
    from . import amx

    why = unsuitable
    if why is None and not COMPILED:
        why = "compiled kernels are switched off"
    if why is None and amx.mlp_linears(decoder) is None:
        why = "the model does not decode with a float32 CPU stack of Linear and ReLU layers"
    if why is None:
        why = amx.unavailable_reason()
    if why is not None and kernel == "amx":
        raise RuntimeError(f"decoder kernel 'amx' cannot run: {why}")
    return why


def decoder_nll(decoder: nn.Module, kernel: str = "auto", unsuitable: str | None = None):
    """The AMX -log p(x|z) of ``decoder`` (kernels.amx.DecoderNLL), or None for the torch definition.

    ``kernel``: "torch" always None; "amx" the AMX kernel or a RuntimeError saying why it cannot
    run; "auto" the AMX kernel where it can run. ``unsuitable``: why the caller's data or model
    rule it out (e.g. "the data are not binary"), None when they do not."""
    if _amx_reason(decoder, kernel, unsuitable) is not None:
        return None
    from . import amx

    return amx.DecoderNLL(decoder)


def decoder_name(decoder: nn.Module, kernel: str = "auto", unsuitable: str | None = None) -> str | None:
    """The name of the compiled kernel decoder_nll would return (for the record), else None."""
    if _amx_reason(decoder, kernel, unsuitable) is not None:
        return None
    from . import amx

    return amx.NAME
