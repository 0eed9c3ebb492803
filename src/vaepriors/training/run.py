"""One training run from prepared data to the files the `train` rule promises."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .. import code_dim, families
from ..config import run_metadata
from ..data.prepare import load_processed
from ..io import write_json
from ..models import LatentVariableModel, save_model
from ..threads import flush_denormals, limit_threads
from .trainer import TrainData, Trainer, write_history

log = logging.getLogger(__name__)


def model_for(name: str, latent_dim: int, input_dim: int, n_classes: int, model_cfg: dict) -> LatentVariableModel:
    return families.get(name).from_config(latent_dim, input_dim, n_classes, model_cfg)


# The whole job: torch's thread pool is created inside, so its threads flush denormals too.
@flush_denormals()
def train_run(
    data_path: str | Path,
    out_dir: str | Path,
    dataset: str,
    model_name: str,
    latent_dim: int,
    seed: int,
    train_cfg: dict,
    model_cfg: dict,
    progress: bool = True,
) -> dict:
    limit_threads(train_cfg["threads"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = load_processed(data_path)
    data = TrainData.from_arrays(arrays)
    n_classes = int(arrays["n_classes"])
    torch.manual_seed(seed)  # network initialisation
    model = model_for(model_name, latent_dim, data.x_train.shape[1], n_classes, model_cfg)
    model.init_output_bias(data.x_train.mean(0))
    run_config = {"dataset": dataset, "model": model_name, "latent_dim": latent_dim,
                  "code_dim": code_dim(model_name, latent_dim), "model_cfg": model_cfg,
                  "data": str(data_path)}
    trainer = Trainer(model, data, train_cfg, seed, out_dir, run_config=run_config,
                      pretrain_epochs=model_cfg["gmm_pretrain_epochs"], progress=progress)
    summary = trainer.fit()

    record = write_run(model, data, seed, out_dir, trainer.history, summary, run_config, train_cfg,
                       model_cfg, trainer.device)
    # The run is complete: its result is model.pt. Stale checkpoints would only mislead a rerun.
    trainer.checkpoints.clear()
    return record


def write_run(model: LatentVariableModel, data: TrainData, seed: int, out_dir: Path,
              history: list[dict], summary: dict, run_config: dict, train_cfg: dict,
              model_cfg: dict, device: torch.device) -> dict:
    """The end of every run (single-seed or grouped): the family's after-training step (the AE's
    ex-post density), then model.pt, history.csv and config.json (config, versions, seed)."""
    extra = model.after_training(data.x_train, data.xb_val, seed, model_cfg)
    model.cpu()
    save_model(model, out_dir / "model.pt")
    write_history(history, out_dir / "history.csv")
    record = {**run_config, "seed": seed, "train": train_cfg, **summary, **extra,
              "meta": run_metadata(seed=seed, device=str(device))}
    write_json(out_dir / "config.json", record)
    return record
