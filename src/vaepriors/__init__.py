"""vaepriors: latent priors for VAEs, measured.

Latent dimension convention (stated once, used everywhere): for a configured latent dimension d,
N-VAE, GMM-VAE and AE put their codes in R^d, while the S-VAE uses the hypersphere S^d embedded in
R^(d+1) (as Davidson et al. 2018 do), so every model has d degrees of freedom.
"""

__version__ = "0.1.0"


def code_dim(model: str, latent_dim: int) -> int:
    """Ambient dimension of the latent code for a configured latent dimension ``latent_dim``."""
    return latent_dim + 1 if model == "svae" else latent_dim
