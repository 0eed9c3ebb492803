"""The latent families on one encoder/decoder, and their checkpoint format."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import families
from ..io import atomic_path
from .autoencoder import AE
from .base import LatentVariableModel
from .gaussian import NVAE
from .mixture import GMMVAE
from .spherical import SVAE

# {name: class} of every registered family (vaepriors.families), plugins included.
FAMILIES = families.Registry()


def build_model(name: str, **kwargs) -> LatentVariableModel:
    return families.get(name)(**kwargs)


def save_model(model: LatentVariableModel, path: str | Path, **extra) -> None:
    """Write {'model', 'kwargs', 'state_dict', ...} atomically (loadable with weights_only=True)."""
    payload = {"model": model.name, "kwargs": model.init_kwargs(), "state_dict": model.state_dict(), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


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
