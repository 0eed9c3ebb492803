from .checkpoint import CheckpointDir, CheckpointError
from .trainer import NonFiniteLossError, TrainData, Trainer, kl_weight, resolve_device, write_history

__all__ = ["CheckpointDir", "CheckpointError", "NonFiniteLossError", "TrainData", "Trainer",
           "kl_weight", "resolve_device", "write_history"]
