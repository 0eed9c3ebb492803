"""Training jobs, from prepared data to the files the `train` rules promise: one seed, or several
seeds of one configuration trained together (each as it would train alone)."""

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


def train_run(data_path: str | Path, out_dir: str | Path, dataset: str, model_name: str, latent_dim: int,
              seed: int, train_cfg: dict, model_cfg: dict, progress: bool = True) -> dict:
    """One seed: train_group of one. Returns its config.json record."""
    return train_group(data_path, [out_dir], dataset, model_name, latent_dim, [seed], train_cfg,
                       model_cfg, progress)[0]


# The whole job: torch's thread pool is created inside, so its threads flush denormals too.
@flush_denormals()
def train_group(
    data_path: str | Path,
    out_dirs: list[str | Path],
    dataset: str,
    model_name: str,
    latent_dim: int,
    seeds: list[int],
    train_cfg: dict,
    model_cfg: dict,
    progress: bool = True,
) -> list[dict]:
    """Seeds[i] into out_dirs[i] (model.pt, history.csv, config.json), trained together. Returns
    the config.json records, one per seed."""
    seeds = [int(s) for s in seeds]
    if len(out_dirs) != len(seeds):
        raise ValueError(f"{len(seeds)} seeds but {len(out_dirs)} run directories")
    limit_threads(train_cfg["threads"])
    out_dirs = [Path(d) for d in out_dirs]
    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)
    arrays = load_processed(data_path)
    data = TrainData.from_arrays(arrays)
    n_classes = int(arrays["n_classes"])
    models = []
    for seed in seeds:
        torch.manual_seed(seed)  # network initialisation
        model = model_for(model_name, latent_dim, data.x_train.shape[1], n_classes, model_cfg)
        data.check_likelihood(model)
        model.initialise(model_cfg.get("init", "torch"), data.x_train.mean(0))
        models.append(model)
    run_config = {"dataset": dataset, "model": model_name, "latent_dim": latent_dim,
                  "code_dim": code_dim(model_name, latent_dim), "model_cfg": model_cfg,
                  "data": str(data_path)}
    if len(seeds) > 1:
        log.info("training %s d=%d seeds %s together", model_name, latent_dim, seeds)
    trainer = Trainer(models, data, train_cfg, seeds, out_dirs, run_config=run_config,
                      progress=progress)
    summaries = trainer.fit()
    records = [write_run(model, data, seed, out_dir, history, summary, run_config, train_cfg,
                         model_cfg, trainer.device)
               for model, seed, out_dir, history, summary
               in zip(models, seeds, out_dirs, trainer.histories, summaries)]
    # The runs are complete: their results are the model.pt files. Stale checkpoints would only
    # mislead a rerun.
    trainer.checkpoints.clear()
    return records


def write_run(model: LatentVariableModel, data: TrainData, seed: int, out_dir: Path,
              history: list[dict], summary: dict, run_config: dict, train_cfg: dict,
              model_cfg: dict, device: torch.device) -> dict:
    """The end of every run: the family's after-training step (the AE's ex-post density), then
    model.pt, history.csv and config.json (config, versions, seed)."""
    extra = model.after_training(data.x_train, data.xb_val, seed, model_cfg)
    model.cpu()
    save_model(model, out_dir / "model.pt")
    write_history(history, out_dir / "history.csv")
    record = {**run_config, "seed": seed, "train": train_cfg, **summary, **extra,
              "meta": run_metadata(seed=seed, device=str(device))}
    write_json(out_dir / "config.json", record)
    return record
