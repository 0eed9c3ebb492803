"""M2 of Kingma, Mohamed, Rezende & Welling (2014): a classifier q(y|x), an encoder q(z|x, y), a
decoder p(x|y, z) and a uniform prior p(y), with the continuous latent z of any latent family that
declares ``semi_supervised`` (its posterior head, prior and KL, as in the VAEs).

Bounds, in nats per example (z a single draw from q(z|x, y)):
- labelled:   L(x, y) = log p(x|y, z) + log p(y) - KL(q(z|x, y) || p(z));
- unlabelled: U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)), the sum over the classes exact.
Objective per data point: ((N_l mean_l(-L) + N_u mean_u(-U)) / N + alpha mean_l(-log q(y|x)).
The paper's alpha = 0.1 N weighs an expectation over labelled points against bounds summed over
all N points; divided by N that is alpha = 0.1 here (their code's value and scaling).

Likelihood: Bernoulli on binary pixels (M2 alone), or a diagonal Gaussian with a learned mean and
log-variance per dimension on an M1's codes (M1+M2; the authors' code: type_px 'gaussian').
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import families
from .gaussian import LOGVAR_MAX, LOGVAR_MIN
from .networks import decoder, mlp

LIKELIHOODS = ("bernoulli", "gaussian")


class M2(nn.Module):
    def __init__(self, family: str, input_dim: int, n_classes: int, latent_dim: int, hidden: int,
                 likelihood: str = "bernoulli"):
        super().__init__()
        cls = families.get(family)
        if not cls.semi_supervised:
            fits = [n for n in families.names() if families.get(n).semi_supervised]
            raise ValueError(f"latent family {family!r} cannot be M2's continuous latent (it needs a "
                             f"fixed prior and no before-training step); families that can: {', '.join(fits)}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown M2 likelihood {likelihood!r} ({', '.join(LIKELIHOODS)})")
        self.family, self.likelihood = family, likelihood
        self.input_dim, self.n_classes, self.hidden = int(input_dim), int(n_classes), [int(hidden)]
        self.classifier = mlp([self.input_dim, *self.hidden, self.n_classes], final_activation=False)
        # The family's own encoder body and posterior head, on x and the one-hot y side by side; its
        # decoder replaced by p(x|y, z) on z and y (the family's prior reads only its device/dtype).
        self.latent = cls.from_config(latent_dim, self.input_dim + self.n_classes, self.n_classes,
                                      {"hidden": self.hidden})
        out = self.input_dim * (2 if likelihood == "gaussian" else 1)
        self.latent.decoder = decoder(self.latent.code_dim + self.n_classes, self.hidden, out)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(y|x)."""
        return self.classifier(x)

    def log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|y, z) summed over dimensions, from the decoder's output."""
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        mean, logvar = out.chunk(2, dim=-1)
        logvar = logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        return -0.5 * ((x - mean).pow(2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)

    def labelled_bound(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L(x, y) per row (single z draw): x (B, D), y (B,) class indices."""
        onehot = F.one_hot(y, self.n_classes).to(x.dtype)
        q = self.latent.posterior(torch.cat([x, onehot], -1))
        z = q.rsample()
        kl = self.latent.kl(q, z)
        out = self.latent.decoder(torch.cat([z, onehot], -1))
        return self.log_likelihood(out, x) - kl - math.log(self.n_classes)

    def class_bounds(self, x: torch.Tensor) -> torch.Tensor:
        """L(x, y) for every class y: (B, K), all K * B rows in one pass."""
        b, k = len(x), self.n_classes
        y = torch.arange(k, device=x.device).repeat_interleave(b)
        return self.labelled_bound(x.repeat(k, 1), y).view(k, b).T

    def unlabelled_bound(self, x: torch.Tensor) -> torch.Tensor:
        """U(x) per row: the class bounds summed under q(y|x), plus its entropy."""
        return unlabelled_from(self.class_bounds(x), self.classify(x))

    def loss(self, x_l: torch.Tensor, y_l: torch.Tensor, x_u: torch.Tensor, n_labelled: int,
             n_unlabelled: int, alpha: float) -> dict[str, torch.Tensor]:
        """The objective per data point on a labelled and an unlabelled batch (module docstring)."""
        n = n_labelled + n_unlabelled
        bound_l = self.labelled_bound(x_l, y_l).mean()
        bound_u = self.unlabelled_bound(x_u).mean()
        ce = F.cross_entropy(self.classify(x_l), y_l)
        bound = (n_labelled * bound_l + n_unlabelled * bound_u) / n
        return {"loss": -bound + alpha * ce, "bound": bound, "ce": ce}


def unlabelled_from(class_bounds: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum_y q(y|x) L(x, y) + H(q(y|x)) = sum_y q(y|x) (L(x, y) - log q(y|x)), rows of (B, K)."""
    log_q = F.log_softmax(logits, -1)
    return (log_q.exp() * (class_bounds - log_q)).sum(-1)
