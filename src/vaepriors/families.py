"""The registry of latent families: the one list of their names, and where each class lives.

A family is one module defining a `LatentVariableModel` subclass that carries everything that
differs between families (see docs/design.md, "Adding a latent family"), plus one line in
`BUILTIN` below. Every other list of family names (the params schema, Snakemake's wildcard
constraints, the scripts' arguments, table order, figure styles) is read from here.

Families outside the package (a plugin, or one a test defines) are named in the environment
variable VAEPRIORS_FAMILIES as ``module:Class`` entries separated by commas; the module must be
importable (on PYTHONPATH). The environment reaches every script that Snakemake, DVC or a test
starts, so such a family is accepted by the whole pipeline without touching the package.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models.base import LatentVariableModel

# name order = canonical order of tables, figures and legends
BUILTIN = (
    "vaepriors.models.gaussian:NVAE",
    "vaepriors.models.spherical:SVAE",
    "vaepriors.models.mixture:GMMVAE",
    "vaepriors.models.autoencoder:AE",
    "vaepriors.models.power_spherical:PSVAE",
    "vaepriors.models.laplace:LaplaceVAE",
    "vaepriors.models.vamp:VampVAE",
)
PLUGIN_ENV = "VAEPRIORS_FAMILIES"

_registry: dict[str, type[LatentVariableModel]] | None = None


class UnknownFamilyError(ValueError):
    """A family name that no registered class carries; the message lists the registered ones."""


def unknown_message(name: object) -> str:
    return (f"unknown latent family {name!r}; registered: {', '.join(names())} (add one with a "
            f"line in vaepriors/families.py, or a module:Class entry in ${PLUGIN_ENV})")


def _load(entry: str) -> type[LatentVariableModel]:
    module, _, attr = entry.strip().partition(":")
    if not module or not attr:
        raise ValueError(f"{PLUGIN_ENV}: entry {entry!r} is not of the form module:Class")
    return getattr(importlib.import_module(module), attr)


def register(cls: type[LatentVariableModel]) -> type[LatentVariableModel]:
    """Add a family class under its ``name`` (usable as a class decorator); returns the class."""
    from .models.base import LatentVariableModel

    if not (isinstance(cls, type) and issubclass(cls, LatentVariableModel)) or not cls.name:
        raise TypeError(f"{cls!r} is not a named LatentVariableModel subclass")
    reg = _families()
    if reg.get(cls.name, cls) is not cls:
        raise ValueError(f"latent family {cls.name!r} is registered twice "
                         f"({reg[cls.name].__module__} and {cls.__module__})")
    reg[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _families().pop(name, None)


def _families() -> dict[str, type[LatentVariableModel]]:
    global _registry
    if _registry is None:
        _registry = {}
        plugins = [e for e in os.environ.get(PLUGIN_ENV, "").split(",") if e.strip()]
        for entry in [*BUILTIN, *plugins]:
            register(_load(entry))
    return _registry


def names() -> list[str]:
    """Every registered family, in canonical order (built-ins first, then plugins)."""
    return list(_families())


def get(name: str) -> type[LatentVariableModel]:
    """The family class registered as ``name``; UnknownFamilyError otherwise."""
    try:
        return _families()[name]
    except (KeyError, TypeError):
        raise UnknownFamilyError(unknown_message(name)) from None


def check(names_: list[str]) -> list[str]:
    """``names_`` unchanged when every one is registered; UnknownFamilyError for the first that is not."""
    for name in names_:
        get(name)
    return names_


class Attribute(Mapping):
    """{family name: one class attribute}, read from the registry on every access, so that a
    family registered after import (a plugin) appears in it as well."""

    def __init__(self, attr: str):
        self.attr = attr

    def __getitem__(self, name: str):
        return getattr(_families()[name], self.attr)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(names())


class Registry(Mapping):
    """{family name: class}, a live view of the registry."""

    def __getitem__(self, name: str):
        return _families()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(names())


class Where(Collection):
    """The names of the registered families whose class attribute ``attr`` is true (live)."""

    def __init__(self, attr: str):
        self.attr = attr

    def _names(self) -> list[str]:
        return [n for n, cls in _families().items() if getattr(cls, self.attr)]

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.attr!r}: {self._names()})"
