"""What every latent family shares: the networks, the Bernoulli likelihood and the ELBO."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution, kl_divergence

from . import likelihoods
from .networks import decoder, encoder_body, glorot_init, init_output_bias

# Keys of the `model` section every family reads.
SHARED_SETTINGS = ("hidden", "init")
# Keys every family reads that came after runs were finished, with the value that builds what
# was built before them: part of a run's identity (config.run_values) only when set otherwise.
# decoder_hidden: the decoder's hidden sizes from the code outwards ([] = the mirror of hidden).
SHARED_DEFAULTS = {"decoder_hidden": [], "likelihood": likelihoods.DEFAULT}

# Rows per call when a whole data set is embedded (clustering, k-NN, density fits).
EMBED_BATCH = 1000


@torch.no_grad()
def embed_all(model: nn.Module, x: torch.Tensor, batch_size: int = EMBED_BATCH) -> np.ndarray:
    """``model.embed`` over a data set in batches on the model's device: (N, code_dim) float64.
    Any module with an ``embed`` method (the evaluation also scores models of its tests)."""
    param = next(model.parameters(), None)
    device = x.device if param is None else param.device
    return torch.cat([model.embed(x[s : s + batch_size].to(device)).double().cpu()
                      for s in range(0, len(x), batch_size)]).numpy()


class LatentVariableModel(nn.Module, metaclass=abc.ABCMeta):
    """Encoder body + family-specific posterior head, decoder, prior. See docs/design.md.

    A family describes itself with the class attributes and hooks below; the trainer, the
    evaluation, the tables and the figures read them instead of testing the family's name."""

    name: str = ""  # the registry key (vaepriors.families), in paths, tables and configs
    # Families whose KL has no closed form estimate it from the posterior sample (GMM-VAE).
    analytic_kl: bool = True
    # Codes on the unit sphere S^d in R^(d+1): ambient dimension d + 1, spherical k-means, and an
    # equal-area map of S^2 as the latent map at d = 2.
    sphere: bool = False
    # What the evaluation does differently (evaluation/, which models never import): clustering by
    # the family's own `cluster(x)` instead of k-means on the codes (a learned mixture prior), and
    # a proposal width, the buffer `proposal_scale`, chosen on validation (a deterministic encoder),
    # with what the resulting number bounds (`bound_note`, written beside it in the metrics).
    assigns_clusters: bool = False
    tuned_proposal: bool = False
    bound_note: str = ""
    # False: no KL term (the "ELBO" is minus the reconstruction); training curves show rec only.
    has_kl: bool = True
    # The AE's ex-post density study (figures/density.py) applies to this family.
    ex_post_density: bool = False
    # M2 (semi-supervised, models/m2.py) may use this family's posterior, prior and KL for its
    # continuous latent: a fixed prior and no before-training step.
    semi_supervised: bool = False
    # Summary: the family others are measured against, and whether this one is (S-VAE vs N-VAE).
    baseline: bool = False
    compare_to_baseline: bool = False
    # Display: legend name, colour, marker, line style; the latent map's contour caption; a sentence
    # the summary adds under the log-likelihood table when this family is in it.
    label: str = ""
    color: str = "#666666"
    marker: str = "x"
    linestyle: str = "-"
    prior_contour_label: str = ""
    loglik_note: str = ""
    # Keys of params.yaml's `model` section this family reads besides the shared SHARED_SETTINGS,
    # with their defaults (what a configuration without one gets). With them, a run's identity
    # (vaepriors.config.run_values) is the values it uses.
    settings: dict[str, Any] = {}
    # JSON schema of each setting (config.load_schema adds them to the model section); without
    # one, the type of its default.
    settings_schema: dict[str, dict] = {}
    # Keys of the `evaluate` section starting "ae_" that this family's evaluation reads.
    evaluate_settings: tuple[str, ...] = ()

    @classmethod
    def code_dim_for(cls, latent_dim: int) -> int:
        """Ambient dimension of z for a configured latent dimension d (d degrees of freedom)."""
        return int(latent_dim) + 1 if cls.sphere else int(latent_dim)

    @classmethod
    def from_config(cls, latent_dim: int, input_dim: int, n_classes: int,
                    model_cfg: dict) -> LatentVariableModel:
        """The untrained model of a run (the `model` section of params.yaml)."""
        return cls(input_dim=input_dim, latent_dim=latent_dim, hidden=model_cfg["hidden"],
                   **cls.shared_kwargs(model_cfg))

    @classmethod
    def setting(cls, model_cfg: dict, key: str) -> Any:
        """One of the family's ``settings`` from a model section (its default when absent)."""
        return model_cfg.get(key, cls.settings[key])

    @staticmethod
    def shared_kwargs(model_cfg: dict) -> dict[str, Any]:
        """The SHARED_DEFAULTS keys of a model section that differ from their defaults, as
        constructor arguments (a family that predates a key still builds at its default)."""
        return {k: model_cfg[k] for k, default in SHARED_DEFAULTS.items()
                if k in model_cfg and model_cfg[k] != default}

    def __init__(self, input_dim: int, latent_dim: int, hidden: list[int],
                 decoder_hidden: list[int] | None = None, likelihood: str = likelihoods.DEFAULT):
        super().__init__()
        self.input_dim = int(input_dim)
        self.latent_dim = int(latent_dim)
        self.hidden = [int(h) for h in hidden]
        self.decoder_hidden = [int(h) for h in decoder_hidden or ()]
        self.likelihood = likelihoods.get(likelihood)
        self.code_dim = self.code_dim_for(self.latent_dim)
        self.body = encoder_body(self.input_dim, self.hidden)
        self.decoder = decoder(self.code_dim, self.hidden, self.input_dim, self.decoder_hidden)
        self.likelihood.add_parameters(self)

    # Constructor arguments, stored in checkpoints so that load_model can rebuild the module.
    # The SHARED_DEFAULTS only where set otherwise: a default model's checkpoint is as before.
    def init_kwargs(self) -> dict[str, Any]:
        kwargs = {"input_dim": self.input_dim, "latent_dim": self.latent_dim, "hidden": self.hidden}
        own = {"decoder_hidden": self.decoder_hidden, "likelihood": self.likelihood.name}
        kwargs.update({k: v for k, v in own.items() if v != SHARED_DEFAULTS[k]})
        return kwargs

    def init_output_bias(self, data_mean: torch.Tensor) -> None:
        """Start the decoder at the output that predicts the training mean."""
        init_output_bias(self.decoder, self.likelihood.output_bias(data_mean))

    def initialise(self, init: str, pixel_mean: torch.Tensor) -> None:
        """model.init: "torch" keeps torch's layer defaults and starts the decoder at the pixel
        means' logits (Burda et al. 2015); "glorot" is what the S-VAE authors' TensorFlow code
        has: Glorot-uniform weights, zero biases, no pixel-mean output bias."""
        if init == "torch":
            self.init_output_bias(pixel_mean)
        elif init == "glorot":
            glorot_init(self)
        else:
            raise ValueError(f"model.init: unknown initialisation {init!r} (torch, glorot)")

    @abc.abstractmethod
    def posterior(self, x: torch.Tensor) -> Distribution:
        """q(z|x): batch_shape (B,), event_shape (code_dim,)."""

    @abc.abstractmethod
    def prior(self) -> Distribution:
        """p(z): batch_shape (), event_shape (code_dim,)."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x).mean

    def embed_all(self, x: torch.Tensor, batch_size: int = EMBED_BATCH) -> np.ndarray:
        """``embed`` over a data set in batches on the model's device: (N, code_dim) float64."""
        return embed_all(self, x, batch_size)

    # --- hooks of the pipeline (no-ops unless a family needs them) -------------------------------
    def before_training(self, setup) -> None:
        """Called by the trainer once before the first epoch (not on resume), for each seed alone
        in its own noise stream: ``setup`` is its training.trainer.SeedSetup (seed, data,
        epoch_batches, pretrain)."""

    def after_training(self, x_train: torch.Tensor, xb_val: torch.Tensor, seed: int,
                       model_cfg: dict) -> dict:
        """Called on the best weights before model.pt is written; returns extra config.json keys.
        ``x_train`` holds grey levels in [0, 1], ``xb_val`` the fixed binarisation."""
        return {}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def reconstruction(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) in nats, summed over pixels (decoder outputs broadcast over sample dimensions)."""
        return -self.likelihood.log_prob(self, out, x)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z). With seeds stacked (training/stack.py) a learned prior has batch_shape (G,)
        and z leads with the seed dimension, (G, B, d): torch's batch convention puts it last."""
        prior = self.prior()
        if not prior.batch_shape:
            return prior.log_prob(z)
        return prior.log_prob(z.movedim(0, -2)).movedim(-1, 0)

    def kl(self, q: Distribution, z: torch.Tensor) -> torch.Tensor:
        if self.analytic_kl:
            return kl_divergence(q, self.prior())
        return q.log_prob(z) - self.prior_log_prob(z)

    def loss(self, x: torch.Tensor, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """Batch means of the loss terms; x may carry leading dimensions (stacked seeds)."""
        q = self.posterior(x)
        z = q.rsample()
        rec = self.reconstruction(self.decode(z), x)
        kl = self.kl(q, z)
        # means over the last (batch) dimension: per seed when the trainer stacks seeds in front
        return {
            "loss": (rec + beta * kl).mean(-1),
            "elbo": -(rec + kl).mean(-1),
            "rec": rec.mean(-1),
            "kl": kl.mean(-1),
        }

    def _zeros(self, *shape: int) -> torch.Tensor:
        p = self.decoder[-1].bias
        return torch.zeros(*shape, dtype=p.dtype, device=p.device)
