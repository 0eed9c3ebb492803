"""One place that sets how many threads a job uses: the rule's `threads`, nothing more."""

from __future__ import annotations


def limit_threads(threads: int) -> None:
    """Cap torch and the BLAS/OpenMP pools (numpy, scikit-learn) at the job's thread count.

    On a shared or loaded machine idle OpenBLAS threads spin; uncapped, small GMM and k-means fits
    ran about a hundred times slower (measured on the quick profile)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(int(threads))
    threadpool_limits(limits=int(threads))
