from .checkpoint import CheckpointDir, CheckpointError
from .trainer import NonFiniteLossError, Trainer, TrainData, kl_weight, resolve_device, write_history

__all__ = ["CheckpointDir", "CheckpointError", "NonFiniteLossError", "Trainer", "TrainData",
           "kl_weight", "resolve_device", "write_history"]
