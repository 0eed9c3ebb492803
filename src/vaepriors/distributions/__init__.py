"""Distributions used as VAE posteriors and priors."""

from .bessel import bessel_ratio, log_iv
from .vmf import HypersphericalUniform, VonMisesFisher

__all__ = ["HypersphericalUniform", "VonMisesFisher", "bessel_ratio", "log_iv"]
