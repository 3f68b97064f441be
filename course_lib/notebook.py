"""Small helpers the notebooks share: run profile, device banner, showing library source."""
from __future__ import annotations

import inspect
import os

import torch

from .core import resolve_device

PROFILES = ("quick", "full")


def profile() -> str:
    """The notebook's run profile, from the ``COURSE_PROFILE`` environment variable.

    ``full`` (the default) trains with the chapter's full budget; ``quick`` trains
    briefly so the notebook runs end to end on a CPU in tests and in the book build.
    """
    value = os.environ.get("COURSE_PROFILE", "full").strip().lower()
    if value not in PROFILES:
        raise ValueError(f"COURSE_PROFILE={value!r} is not accepted; accepted: {', '.join(PROFILES)}")
    return value


def setup(seed: int = 0) -> tuple[torch.device, str]:
    """Pick the device (GPU when there is one), seed everything, print one line; returns (device, profile)."""
    from .core import seed_everything

    device = resolve_device("auto")
    seed_everything(seed)
    prof = profile()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name} · profile: {prof} · torch {torch.__version__}")
    return device, prof


def show_source(obj) -> None:
    """Display the source of a course_lib function or class, highlighted, in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))
