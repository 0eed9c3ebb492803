"""The decoder's -log p(x|z) on Intel AMX (see amx_kernels.c for the arithmetic).

On a CPU with AMX (Sapphire Rapids and later) the log-likelihood evaluation is almost all decoder
GEMM, bound by the float32 GEMM rate. The kernel splits every float32 operand into two bfloat16 and
sums three bfloat16 products in float32 on the AMX unit ("bf16x3"), then turns the logits into
softplus sums without writing them out. Against float64 arithmetic the per-code -log p(x|z) of a
trained 784-256-128 decoder is off by under 1e-3 nats, far below the Monte Carlo error of the
importance-sampled estimate (tests/test_amx.py; speed and accuracy in benchmarks/README.md).

The kernel is C compiled on first use with the system's C compiler (``$CC``, else ``cc``) into a
cache directory (``$VAEPRIORS_CACHE``, else ``~/.cache/vaepriors``), keyed by a hash of the source
and flags. It is used only when the CPU reports AMX-BF16 and AVX-512-BF16, the compiler builds it
and Linux grants the process AMX state (``VAEPRIORS_NO_AMX=1`` switches it off); otherwise
:func:`unavailable_reason` says why and the evaluation uses torch.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("amx_kernels.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16",
         "-mfma", "-mamx-tile", "-mamx-bf16"]
CPU_FLAGS = ("amx_tile", "amx_bf16", "avx512f", "avx512bw", "avx512vl", "avx512_bf16")
NAME = "amx-bf16x3"

_lock = threading.Lock()
_state: dict = {}
_pools: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """One process-wide pool per thread count, shared by every kernel (an evaluation builds several)."""
    with _lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="amx")
        return _pools[threads]


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cache_dir() -> Path:
    return Path(os.environ.get("VAEPRIORS_CACHE") or Path.home() / ".cache" / "vaepriors")


def _build() -> Path:
    compiler = os.environ.get("CC", "cc")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join([compiler, *FLAGS]).encode()).hexdigest()[:16]
    target = cache_dir() / f"amx_kernels-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed: a concurrent job never loads a half-written library.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        done = subprocess.run([compiler, *FLAGS, "-o", str(out), str(SOURCE), "-lm"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} could not build {SOURCE.name}: {done.stderr.strip()[-500:]}")
        os.replace(out, target)
    return target


def _load() -> ctypes.CDLL:
    missing = [f for f in CPU_FLAGS if f not in _cpu_flags()]
    if missing:
        raise RuntimeError(f"the CPU lacks {', '.join(missing)}")
    lib = ctypes.CDLL(str(_build()))
    if lib.vp_amx_init() != 0:
        raise RuntimeError("Linux refused the process AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)")
    ptr, i32 = ctypes.c_void_p, ctypes.c_int
    lib.vp_pack_weight.argtypes = [ptr, i32, i32, ptr, i32, i32]
    lib.vp_pack_weight.restype = None
    lib.vp_decoder_nll.argtypes = [ptr, i32, i32, i32, ptr, ptr, ptr, ptr, ptr, ctypes.c_long, i32, ptr]
    lib.vp_decoder_nll.restype = None
    return lib


def library() -> ctypes.CDLL:
    """The loaded kernel library; RuntimeError (with the reason) where AMX cannot be used."""
    with _lock:
        if "lib" not in _state and "error" not in _state:
            if os.environ.get("VAEPRIORS_NO_AMX"):
                _state["error"] = "switched off by VAEPRIORS_NO_AMX"
            else:
                try:
                    _state["lib"] = _load()
                except (OSError, RuntimeError) as exc:
                    _state["error"] = str(exc)
                    log.info("AMX decoder kernel unavailable (%s); the evaluation uses torch", exc)
        if "error" in _state:
            raise RuntimeError(_state["error"])
        return _state["lib"]


def unavailable_reason() -> str | None:
    """None when the AMX kernel can run here, else why not."""
    try:
        library()
    except RuntimeError as exc:
        return str(exc)
    return None


def _pad(n: int) -> int:
    return -(-n // 32) * 32


def mlp_linears(decoder: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of a Linear, ReLU, ..., Linear stack on the CPU, else None."""
    if not isinstance(decoder, nn.Sequential) or len(decoder) % 2 != 1:
        return None
    linears = list(decoder[::2])
    if not all(type(m) is nn.Linear and m.bias is not None and m.weight.dtype == torch.float32
               and m.weight.device.type == "cpu" for m in linears):
        return None
    if not all(type(m) is nn.ReLU for m in decoder[1::2]):
        return None
    # torch would refuse mismatched widths at run time; the kernel never calls torch, so check here
    if any(a.out_features != b.in_features for a, b in zip(linears, linears[1:])):
        return None
    return linears


class DecoderNLL:
    """-log p(x|z) of a Bernoulli MLP decoder, per code, computed by the AMX kernel.

    The weights are packed once, here: build one per evaluation (not across training steps).
    Rows are split over torch's thread count, each thread running the kernel on its share
    (ctypes releases the GIL). One instance serves one caller at a time (its scratch is reused)."""

    def __init__(self, decoder: nn.Module):
        self.lib = library()
        linears = mlp_linears(decoder)
        if linears is None:
            raise ValueError("the AMX kernel needs a float32 CPU decoder of Linear and ReLU layers")
        self.dims = [d for lin in linears for d in (lin.out_features, lin.in_features)]
        self.kpads = [_pad(lin.in_features) for lin in linears]
        self.packs, self.biases = [], []
        for lin, kpad in zip(linears, self.kpads):
            w = lin.weight.detach().contiguous()
            packed = torch.empty(3 * kpad * _pad(lin.out_features), dtype=torch.int16)
            self.lib.vp_pack_weight(w.data_ptr(), lin.out_features, lin.in_features, packed.data_ptr(),
                                    _pad(lin.out_features), kpad)
            self.packs.append(packed)
            self.biases.append(lin.bias.detach().contiguous().clone())
        n = len(linears)
        self._dims = (ctypes.c_int * len(self.dims))(*self.dims)
        self._packs = (ctypes.c_void_p * n)(*[p.data_ptr() for p in self.packs])
        self._biases = (ctypes.c_void_p * n)(*[b.data_ptr() for b in self.biases])
        self._block = self.lib.vp_block_rows()
        self._scratch: dict[int, tuple[list[torch.Tensor], ctypes.Array]] = {}

    def _buffers(self, slot: int):
        if slot not in self._scratch:  # one block of each layer's input; the zero padding stays zero
            bufs = [torch.zeros(self._block * 3 * k, dtype=torch.int16) for k in self.kpads]
            self._scratch[slot] = (bufs, (ctypes.c_void_p * len(bufs))(*[b.data_ptr() for b in bufs]))
        return self._scratch[slot][1]

    def _run(self, slot: int, z: torch.Tensor, signs: torch.Tensor, first: int, out: torch.Tensor) -> None:
        self.lib.vp_decoder_nll(z.data_ptr(), z.shape[0], z.shape[1], len(self.packs), self._dims, self._packs,
                                self._biases, self._buffers(slot), signs.data_ptr(), first, signs.shape[0],
                                out.data_ptr())

    def __call__(self, z: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
        """z (rows, code_dim), signs = 1 - 2x (period, D) with code r scored against signs[r % period]:
        float64 -log p(x|z) of shape (rows,)."""
        z = z.detach().to(torch.float32).contiguous()
        signs = signs.to(torch.float32).contiguous()
        rows = z.shape[0]
        if z.shape[1] != self.dims[1] or signs.shape[1] != self.dims[-2]:
            raise ValueError(f"codes {tuple(z.shape)} / signs {tuple(signs.shape)} do not fit the decoder "
                             f"({self.dims[1]} -> {self.dims[-2]})")
        if signs.shape[0] == 0 and rows:
            raise ValueError("no signs rows to score the codes against")
        out = torch.empty(rows, dtype=torch.float64)
        if rows == 0:
            return out
        threads = min(torch.get_num_threads(), -(-rows // self._block))
        if threads == 1:
            self._run(0, z, signs, 0, out)
            return out
        pool = _pool(threads)
        share = _pad(-(-rows // threads))
        jobs = [pool.submit(self._run, slot, z[start : start + share], signs, start, out[start : start + share])
                for slot, start in enumerate(range(0, rows, share))]
        for job in jobs:
            job.result()
        return out
