"""The contenders of benchmarks/bench_speed.py: what it times, each built on the same 784-256-128
networks and data. Training contenders return a callable that runs one epoch over x; evaluation
contenders a callable that scores the test points at K importance samples. The harness
(bench_speed.py) alternates them, takes medians and judges the ratios.

  * ours: the package's Trainer epoch and importance_log_likelihood (its default decoder kernel);
  * plain: a hand-written PyTorch loop (N-VAE, and an S-VAE on our VonMisesFisher);
  * pythae 0.1.2 (optional): its VAE / SVAE train step and get_nll, with and without flushing
    denormals;
  * roofline: torch.mm on the decoder's layer shapes, this machine's GEMM ceiling.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

D = 784
HIDDEN = [256, 128]
LATENT = 10
BATCH = 64
LR = 1e-3
CHUNK = 20_000_000  # params.yaml evaluate.chunk_elements


def train_cfg(**over) -> dict:
    cfg = {"optimizer": "adam", "lr": LR, "batch_size": BATCH, "max_epochs": 10**6, "warmup_epochs": 100,
           "patience": 10**6, "device": "cpu", "threads": torch.get_num_threads(), "seeds_per_job": 1}
    cfg.update(over)
    return cfg


def pythae_available() -> tuple[bool, str]:
    try:
        import pythae  # noqa: F401
        from pythae.trainers import BaseTrainer  # noqa: F401
    except Exception as exc:  # noqa: BLE001  (ImportError, or a broken install)
        return False, (f"pythae is not importable ({type(exc).__name__}: {exc}); install the optional "
                       "extra with `pip install -e .[bench]` (pythae==0.1.2) to measure its columns")
    return True, ""


def load_data(n_train: int, n_test: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(grey training images in [0,1], binarised test images), both (N, 784) float32, and a label."""
    path = ROOT / "data" / "processed" / "fashion_mnist.npz"
    if path.exists():
        from vaepriors.data.prepare import load_processed
        arrays = load_processed(path)
        x = torch.from_numpy(np.asarray(arrays["x_train"][:n_train])).float().div_(255.0)
        xt = torch.from_numpy(np.asarray(arrays["xb_test"][:n_test])).float()
        if len(x) >= n_train and len(xt) >= n_test:
            return x, xt, str(path.relative_to(ROOT))
    g = torch.Generator().manual_seed(seed)
    # Random MNIST-shaped grey levels: mostly dark pixels with some bright ones, like digits.
    x = torch.rand(n_train, D, generator=g).pow_(4)
    xt = torch.bernoulli(torch.rand(n_test, D, generator=g).pow_(4), generator=g)
    return x, xt, "random MNIST-shaped (no processed Fashion-MNIST found)"


def ours_model(name: str, seed: int = 0):
    from vaepriors.training.run import model_for
    torch.manual_seed(seed)
    # the families' default settings (as params.yaml: 10 mixture components, 500 pseudo-inputs)
    return model_for(name, LATENT, D, 10, {"hidden": HIDDEN})


# --- training: each returns a callable that runs one epoch over x ------------------------------

def ours_train(name: str, x: torch.Tensor, tmp: Path):
    from vaepriors.training import TrainData, Trainer
    model = ours_model(name)
    model.init_output_bias(x.mean(0))
    data = TrainData(x, x[:BATCH].bernoulli())
    trainer = Trainer(model, data, train_cfg(), 0, tmp / f"ours-{name}", progress=False)

    def epoch():
        trainer.train_epoch()
        trainer.epoch += 1
    return epoch


class PlainNVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                 nn.Linear(128, 2 * LATENT))
        self.dec = nn.Sequential(nn.Linear(LATENT, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
                                 nn.Linear(256, D))

    def loss(self, x):
        mu, logvar = self.enc(x).chunk(2, -1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)
        return (rec + kl).mean()


class PlainSVAE(nn.Module):
    """Hand-written, but with our VonMisesFisher (there is no vMF in torch itself)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.loc = nn.Linear(128, LATENT + 1)
        self.conc = nn.Linear(128, 1)
        self.dec = nn.Sequential(nn.Linear(LATENT + 1, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(),
                                 nn.Linear(256, D))

    def loss(self, x):
        from vaepriors.distributions import HypersphericalUniform, VonMisesFisher
        h = self.body(x)
        q = VonMisesFisher(F.normalize(self.loc(h), dim=-1), F.softplus(self.conc(h)).squeeze(-1) + 1)
        z = q.rsample()
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="none").sum(-1)
        kl = torch.distributions.kl_divergence(q, HypersphericalUniform(LATENT + 1))
        return (rec + kl).mean()


def plain_train(name: str, x: torch.Tensor, tmp: Path):
    torch.manual_seed(0)
    model = PlainNVAE() if name == "nvae" else PlainSVAE()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)

    def epoch():
        xb = torch.bernoulli(x, generator=gen)
        perm = torch.randperm(len(xb), generator=gen)
        for s in range(0, len(xb), BATCH):
            loss = model.loss(xb[perm[s : s + BATCH]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return epoch


def pythae_networks(name: str, model):
    """pythae encoder/decoder wrapping our model's modules (same architecture and weights)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.body = model.body
            self.head = model.head

        def forward(self, x):
            h = self.body(x.reshape(len(x), -1))
            if name == "nvae":
                mu, logvar = self.head(h).chunk(2, -1)
                return ModelOutput(embedding=mu, log_covariance=logvar)
            out = self.head(h)  # direction, then concentration (our S-VAE's one head)
            return ModelOutput(embedding=out[:, :-1], log_concentration=out[:, -1:])

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = model.decoder

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))  # pythae's BCE wants probabilities

    return Encoder(), Decoder()


def pythae_model(name: str, ours=None):
    from pythae.models import SVAE, VAE, SVAEConfig, VAEConfig
    ours = ours if ours is not None else ours_model(name)
    enc, dec = pythae_networks(name, ours)
    if name == "nvae":
        cfg = VAEConfig(input_dim=(D,), latent_dim=LATENT, reconstruction_loss="bce")
        return VAE(cfg, encoder=enc, decoder=dec)
    cfg = SVAEConfig(input_dim=(D,), latent_dim=LATENT + 1, reconstruction_loss="bce")
    return SVAE(cfg, encoder=enc, decoder=dec)


def pythae_train(name: str, x: torch.Tensor, tmp: Path):
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    logging.getLogger("pythae").setLevel(logging.WARNING)
    model = pythae_model(name)
    # pythae has no dynamic binarisation: one fixed binarised copy (less work than ours does).
    xb = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    dataset = BaseDataset(xb, torch.zeros(len(xb)))
    cfg = BaseTrainerConfig(output_dir=str(tmp / f"pythae-{name}"), per_device_train_batch_size=BATCH,
                            num_epochs=1, learning_rate=LR, no_cuda=True)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = BaseTrainer(model, dataset, eval_dataset=None, training_config=cfg)
        trainer.prepare_training()  # setup (seed, optimizer, output dir, callbacks): not timed
    count = [0]

    def epoch():
        count[0] += 1
        with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
            trainer.train_step(count[0])
    return epoch


def pythae_ftz_train(name: str, x: torch.Tensor, tmp: Path):
    """pythae with denormals flushed to zero, as our Trainer runs: shows how much of the ratio
    the flushing alone buys (pythae itself leaves the CPU's default)."""
    from vaepriors.threads import flush_denormals
    epoch = pythae_train(name, x, tmp / "ftz")

    def run():
        with flush_denormals():
            epoch()
    return run


# --- evaluation ---------------------------------------------------------------------------------

def decoder_flops_per_code(code_dim: int) -> int:
    sizes = [code_dim, *reversed(HIDDEN), D]
    return sum(2 * a * b for a, b in itertools.pairwise(sizes))


def roofline_run(rows: int, code_dim: int, calls: int, dtype=torch.float32):
    """torch.mm on the decoder's layer shapes, `rows` codes per call (the evaluation's chunk), into
    preallocated outputs: what this machine's GEMM does on exactly the decoder's work. Returns a
    callable doing `calls` decoder-shaped passes, and its FLOPs. In bfloat16 torch runs oneDNN's
    AMX kernels where the CPU has them: the ceiling for our AMX kernel's bf16 products."""
    sizes = [code_dim, *reversed(HIDDEN), D]
    mats = [(torch.randn(rows, a).to(dtype), torch.randn(a, b).to(dtype), torch.empty(rows, b, dtype=dtype))
            for a, b in itertools.pairwise(sizes)]

    def run():
        for _ in range(calls):
            for lhs, rhs, out in mats:
                torch.mm(lhs, rhs, out=out)
    return run, calls * rows * decoder_flops_per_code(code_dim)


def ours_eval(model, xt, k, chunk, kernel="auto"):
    from vaepriors.evaluation.loglik import importance_log_likelihood
    gen = torch.Generator().manual_seed(0)
    return lambda: importance_log_likelihood(model, xt, k, chunk, generator=gen, kernel=kernel)


def pythae_eval(model, xt, k):
    def run():
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            model.get_nll(xt, n_samples=k, batch_size=k)
    return run
