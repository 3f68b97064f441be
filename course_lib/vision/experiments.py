"""The chapter's ViT experiments on the 8×8 digits, each one call that trains and scores.

* :func:`train_and_evaluate`: one model of a profile's configuration, trained and scored on the
  fixed test split; accuracy, training seconds, tokens and the trained network.
* :func:`patch_size_experiment`: the lecture's trade-off: a smaller patch P gives more tokens
  N = HW/P² (more detail, and attention costs grow with N²), a larger one fewer.
* :func:`position_ablation`: the same ViT with learned positions and with none (then attention
  sees a set of patches and cannot tell where each came from).

``profile="quick"`` (or ``COURSE_PROFILE=quick``, the notebooks' switch) trains a smaller model
for fewer epochs, so that the notebook runs these in well under a minute on a CPU; ``"full"``
trains the digits configuration of :class:`~course_lib.agents.vit.ViTConfig`.
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["PROFILE_PRESETS", "train_and_evaluate", "patch_size_experiment", "position_ablation"]

# Notebook profile -> ViTConfig preset.
PROFILE_PRESETS = {"quick": "quick", "full": "digits"}


def _preset(profile: str | None) -> str:
    from ..notebook import profile as notebook_profile

    profile = notebook_profile() if profile is None else profile
    if profile not in PROFILE_PRESETS:
        raise ValueError(f"unknown profile {profile!r}; accepted: {', '.join(PROFILE_PRESETS)}")
    return PROFILE_PRESETS[profile]


def train_and_evaluate(profile: str | None = None, seed: int = 0, device: str = "auto", progress: bool = False,
                       **overrides: Any) -> dict[str, Any]:
    """Train one model (:func:`course_lib.agents.vit.train`, in memory) with the profile's preset and
    ``overrides`` (:class:`~course_lib.agents.vit.ViTConfig` fields, e.g. ``patch=2``), and score it.

    Returns:
      ``{"test_accuracy", "train_seconds", "tokens", "parameters", "net", "summary"}`` (``net``
      the trained model in eval mode; ``summary`` everything :func:`~course_lib.agents.vit.train` reported).
    """
    from ..agents.vit import ViTConfig, train

    cfg = ViTConfig.from_dict({**overrides, "seed": seed, "device": device}, preset=_preset(profile))
    summary = train(cfg, None, progress=progress, keep_network=True)
    net = summary.pop("net", None)
    return {"test_accuracy": summary["test_accuracy"], "train_seconds": summary["train_seconds"],
            "tokens": summary["tokens"], "parameters": summary["parameters"], "net": net, "summary": summary}


def patch_size_experiment(patches: Iterable[int] = (1, 2, 4), profile: str | None = None, seed: int = 0,
                          **overrides: Any) -> list[dict[str, Any]]:
    """One ViT per patch size P, otherwise alike: rows ``{"patch", "tokens", "test_accuracy",
    "train_seconds", "parameters"}`` (``tokens`` = N + 1 with the class token)."""
    rows = []
    for patch in patches:
        result = train_and_evaluate(profile, seed, patch=patch, **overrides)
        rows.append({"patch": patch, **{k: result[k] for k in ("tokens", "test_accuracy", "train_seconds",
                                                                "parameters")}})
    return rows


def position_ablation(profile: str | None = None, seed: int = 0, **overrides: Any) -> dict[str, dict[str, Any]]:
    """The same ViT trained with a learned position table and without one:
    ``{"learned": row, "none": row}``, each row ``{"test_accuracy", "train_seconds", "parameters"}``."""
    out = {}
    for positions in ("learned", "none"):
        result = train_and_evaluate(profile, seed, positions=positions, **overrides)
        out[positions] = {k: result[k] for k in ("test_accuracy", "train_seconds", "parameters")}
    return out
