"""CPU settings of a job: how many threads it uses (the rule's `threads`, nothing more), and
denormal floats flushed to zero while it trains or evaluates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def limit_threads(threads: int) -> None:
    """Cap torch and the BLAS/OpenMP pools (numpy, scikit-learn) at the job's thread count.

    On a shared or loaded machine idle OpenBLAS threads spin, and uncapped small GMM and k-means
    fits slow down by orders of magnitude."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(int(threads))
    threadpool_limits(limits=int(threads))


def flushing_denormals() -> bool:
    """Whether this thread's CPU currently flushes denormal float32 values to zero."""
    import torch

    # 1e-39 is below float32's smallest normal (1.2e-38): it survives doubling only without FTZ/DAZ.
    return bool(torch.tensor(1e-39, dtype=torch.float32).mul(2) == 0)


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the calling thread (x86 FTZ/DAZ), restoring the previous mode.

    As a VAE trains, some weights, gradients and Adam moments decay below float32's normal range;
    arithmetic on such values takes a slow microcode path, so epochs slow down as training goes on
    (benchmarks/README.md). Values below 1.2e-38 become 0, which changes no result beyond float
    rounding. Threads of torch's pool inherit the mode only when they are
    created inside the block (as in a job process, whose first parallel work happens here)."""
    import torch

    was = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not was:
            torch.set_flush_denormal(False)
