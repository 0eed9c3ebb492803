"""Random draws split into groups along the leading batch dimension.

The multi-seed trainer stacks G seeds along dim 0 of every tensor, and each seed must draw its
posterior noise from its own random stream (so that it trains exactly as it would alone). Inside
``noise_groups(contexts)`` a distribution of this package draws the rows of group i (the i-th
equal block of its flattened batch) inside ``contexts[i]()``: the trainer's context swaps that
seed's RNG state in. Outside it, draws are made as usual, in one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")
_GROUPS: ContextVar[Sequence[Callable[[], AbstractContextManager]] | None] = ContextVar(
    "vaepriors_noise_groups", default=None)


@contextmanager
def noise_groups(contexts: Sequence[Callable[[], AbstractContextManager]]) -> Iterator[None]:
    """Within the block, draws are split into len(contexts) groups, group i drawn in contexts[i]()."""
    token = _GROUPS.set(list(contexts))
    try:
        yield
    finally:
        _GROUPS.reset(token)


def grouped(draw: Callable[[slice], T], rows: int) -> list[T]:
    """[draw(rows of group i) for each group], each inside its group's context; [draw(all rows)]
    outside noise_groups. ``rows`` counts the flattened batch, group-major."""
    groups = _GROUPS.get()
    if not groups:
        return [draw(slice(0, rows))]
    if rows % len(groups):
        raise ValueError(f"{rows} rows do not split into {len(groups)} noise groups")
    per = rows // len(groups)
    out = []
    for i, context in enumerate(groups):
        with context():
            out.append(draw(slice(i * per, (i + 1) * per)))
    return out


def active() -> bool:
    return bool(_GROUPS.get())
