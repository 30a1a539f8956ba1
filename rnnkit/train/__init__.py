"""Layer 'train': the Trainer (optimisers, clipping, TBPTT, checkpoints, resume, metrics)."""

from rnnkit.train.config import TrainConfig, add_config_flags, config_from_dict, resolve_config
from rnnkit.train.trainer import Trainer, detach_state

__all__ = ["Trainer", "TrainConfig", "detach_state", "config_from_dict", "add_config_flags",
           "resolve_config"]
