"""Foundations every algorithm uses: device, seeding, configs, checkpoints, metrics, runs and the
training-loop kit."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError, TrainConfig, option
from .device import resolve_device, rng_state, seed_everything, set_rng_state
from .metrics import EpisodeTracker, MetricsLogger, ProgressBar, read_metrics
from .loop import Callback, Counters, MeanStats, Stopwatch, TargetTracker, crossed
from .run import Run, RunExists, stored_config

__all__ = [
    "Callback", "Config", "ConfigError", "Counters", "EpisodeTracker", "MeanStats", "MetricsLogger", "ProgressBar",
    "Run", "RunExists", "Stopwatch", "TargetTracker", "TrainConfig", "crossed", "load_checkpoint", "option",
    "read_metrics", "resolve_device",
    "rng_state", "save_checkpoint", "seed_everything", "set_rng_state", "stored_config",
]
