"""The latent families on one encoder/decoder, and their checkpoint format."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from .. import families
from ..io import PICKLE, save_torch, zip_damage
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
    save_torch(payload, path)


class TorchFileError(ValueError):
    """A model, classifier or checkpoint file cannot be read; the message names the file."""


def _load_failure(exc: BaseException) -> str:
    # torch's message for a file holding other objects advises weights_only=False, which would run
    # whatever code a damaged or foreign pickle carries: it is replaced, never passed on.
    text = str(exc).strip()
    if "weights_only" in text or "Unpickl" in type(exc).__name__:
        return ("a pickle that holds objects other than tensors; they are not loaded, since loading "
                "them could run code")
    first = text.splitlines()[0].split(". ")[0][:160] if text else ""
    return f"truncated or corrupt: {type(exc).__name__}{': ' + first if first else ''}"


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu"):
    """``torch.load(path, weights_only=True)``; any failure is a TorchFileError naming the file
    and what was found. torch.load does not verify the archive's checksums, so damaged weights
    would load silently: they are checked first (a few ms for a model)."""
    try:
        damage = zip_damage(path)
        if damage and damage != PICKLE:  # a pickle is torch's legacy format: torch.load decides
            raise TorchFileError(f"{path}: not readable ({damage})")
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                raise TorchFileError(f"{path}: not readable (a zip archive with a bad checksum, "
                                     f"in {bad.split('/', 1)[-1]})")
        return torch.load(path, map_location=map_location, weights_only=True)
    except TorchFileError:
        raise
    except FileNotFoundError:
        raise TorchFileError(f"{path}: not found") from None
    except Exception as exc:  # torch raises a different type for each way a file can be damaged
        raise TorchFileError(f"{path}: not readable ({_load_failure(exc)})") from None


def regenerate_hint(path: str | Path) -> str:
    return (f"Regenerate it: rerun your snakemake command with `--forcerun {path}` (e.g. "
            f"`snakemake --cores all --forcerun {path}`); the jobs that read it then rerun too.")


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> LatentVariableModel:
    """The model a `train` job wrote; an unreadable file is a TorchFileError naming it and how to
    regenerate it."""
    try:
        payload = read_torch_file(path, map_location)
    except TorchFileError as exc:
        raise TorchFileError(f"{exc}. {regenerate_hint(path)}") from None
    keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
    if not isinstance(payload, dict) or not {"model", "kwargs", "state_dict"} <= set(payload):
        raise TorchFileError(f"{path}: a torch file but not a vaepriors model (it holds {keys}; "
                             f"a model holds 'model', 'kwargs', 'state_dict'). {regenerate_hint(path)}")
    try:
        model = build_model(payload["model"], **payload["kwargs"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise TorchFileError(f"{path}: not a vaepriors model checkpoint ({type(exc).__name__}: {exc}). "
                             f"{regenerate_hint(path)}") from None
    return model.eval()


__all__ = ["AE", "FAMILIES", "GMMVAE", "NVAE", "SVAE", "LatentVariableModel", "TorchFileError",
           "build_model", "load_model", "read_torch_file", "regenerate_hint", "save_model"]
