"""Layer 'train': the Trainer (optimisers, clipping, TBPTT, checkpoints, resume, metrics) and
the applications built on it (lm, seq2seq, classify, music: each a config and `main`)."""

from rnnkit.train.config import (
    TrainConfig,
    add_config_flags,
    config_from_dict,
    option,
    resolve_config,
    start_run,
)
from rnnkit.train.integrity import CheckpointError
from rnnkit.train.run_dir import ResumeMismatchError, RunExistsError, RunInUseError
from rnnkit.train.trainer import Trainer, TrainingDivergedError, detach_state

__all__ = ["Trainer", "TrainConfig", "detach_state", "config_from_dict", "add_config_flags",
           "resolve_config", "option", "start_run", "CheckpointError", "RunExistsError",
           "RunInUseError", "ResumeMismatchError", "TrainingDivergedError"]
