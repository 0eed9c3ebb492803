"""Per-epoch checkpoints that survive kill -9: atomic writes, the last two kept, corruption detected.

A checkpoint holds everything the next epoch depends on (weights, optimizer, every RNG state,
early-stopping state, history), so a resumed run continues bit for bit where the killed one stopped.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..io import save_torch

log = logging.getLogger(__name__)

KEEP = 2
_NAME = re.compile(r"^epoch-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint file is truncated or not one of ours; the message names the file."""


def atomic_save(obj: Any, path: Path) -> None:
    save_torch(obj, path, fsync=True)


class CheckpointDir:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def epochs(self) -> list[int]:
        found = (_NAME.match(p.name) for p in self.dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, epoch: int) -> Path:
        return self.dir / f"epoch-{epoch:05d}.pt"

    def save(self, state: dict, epoch: int) -> None:
        atomic_save(state, self.path(epoch))
        # Checkpoints numbered after this one are stale (unreadable ones that resume skipped):
        # left in place they would outrank, and prune away, the checkpoint just written.
        for stale in self.epochs():
            if stale > epoch:
                self.path(stale).unlink(missing_ok=True)
        for old in self.epochs()[:-KEEP]:
            self.path(old).unlink(missing_ok=True)

    def read(self, path: Path) -> dict:
        from ..models import TorchFileError, read_torch_file

        try:
            state = read_torch_file(path)
        except TorchFileError as exc:
            raise CheckpointError(f"checkpoint {exc}") from None
        if not isinstance(state, dict) or "epoch" not in state:
            raise CheckpointError(f"checkpoint {path} is not a vaepriors training checkpoint")
        return state

    def latest(self, fingerprint: str | None = None) -> dict | None:
        """Newest readable checkpoint; say so (never silently) when falling back or starting over.
        With ``fingerprint``, checkpoints written under another configuration are cleared, not
        resumed."""
        state = self._newest_readable()
        if state is not None and fingerprint is not None and state.get("fingerprint") != fingerprint:
            log.warning("checkpoints in %s belong to another configuration; starting over", self.dir)
            self.clear()
            return None
        return state

    def _newest_readable(self) -> dict | None:
        epochs = self.epochs()
        for epoch in reversed(epochs):
            path = self.path(epoch)
            try:
                state = self.read(path)
            except CheckpointError as exc:
                log.warning("%s; falling back to the previous checkpoint", exc)
                continue
            log.info("resuming from %s (epoch %d)", path, state["epoch"])
            return state
        if epochs:
            log.warning("no readable checkpoint in %s; starting over from epoch 0", self.dir)
        return None

    def clear(self) -> None:
        for epoch in self.epochs():
            self.path(epoch).unlink(missing_ok=True)
        # Temporary files of a save that a kill interrupted.
        for tmp in self.dir.glob(".epoch-*.tmp"):
            tmp.unlink(missing_ok=True)
