"""The four latent families on one encoder/decoder, and their checkpoint format."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .autoencoder import AE
from .base import LatentVariableModel
from .gaussian import NVAE
from .mixture import GMMVAE
from .spherical import SVAE

FAMILIES: dict[str, type[LatentVariableModel]] = {
    "nvae": NVAE,
    "svae": SVAE,
    "gmmvae": GMMVAE,
    "ae": AE,
}


def build_model(name: str, **kwargs) -> LatentVariableModel:
    try:
        cls = FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(FAMILIES)}") from None
    return cls(**kwargs)


def save_model(model: LatentVariableModel, path: str | Path, **extra) -> None:
    """Write {'model', 'kwargs', 'state_dict', ...} atomically (loadable with weights_only=True)."""
    path = Path(path)
    payload = {"model": model.name, "kwargs": model.init_kwargs(), "state_dict": model.state_dict(), **extra}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LatentVariableModel:
    payload = torch.load(path, map_location=map_location, weights_only=True)
    try:
        model = build_model(payload["model"], **payload["kwargs"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a vaepriors model checkpoint ({exc})") from exc
    return model.eval()


__all__ = ["AE", "FAMILIES", "GMMVAE", "NVAE", "SVAE", "LatentVariableModel", "build_model",
           "load_model", "save_model"]
