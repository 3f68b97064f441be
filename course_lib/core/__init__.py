"""Foundations every algorithm uses: device, seeding, configs, checkpoints, metrics, runs."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, ConfigError, option
from .device import resolve_device, rng_state, seed_everything, set_rng_state
from .metrics import EpisodeTracker, MetricsLogger, ProgressBar, read_metrics
from .run import Run, RunExists, stored_config

__all__ = [
    "Config", "ConfigError", "EpisodeTracker", "MetricsLogger", "ProgressBar", "Run",
    "RunExists", "load_checkpoint", "option", "read_metrics", "resolve_device",
    "rng_state", "save_checkpoint", "seed_everything", "set_rng_state", "stored_config",
]
