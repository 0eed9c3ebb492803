"""vaepriors: latent priors for VAEs, measured.

Latent dimension convention (stated once, used everywhere): for a configured latent dimension d,
every family has d degrees of freedom; a family on the sphere (the S-VAE, `sphere = True` on its
class) uses S^d embedded in R^(d+1), as Davidson et al. 2018 do, the others R^d.
"""

__version__ = "0.1.0"


def code_dim(model: str, latent_dim: int) -> int:
    """Ambient dimension of the latent code of family ``model`` for a configured ``latent_dim``."""
    from .families import get

    return get(model).code_dim_for(latent_dim)
