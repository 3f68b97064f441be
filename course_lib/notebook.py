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


def setup(seed: int = 0, threads: int | None = None) -> tuple[torch.device, str]:
    """Pick the device (GPU when there is one), choose CPU threads, seed everything, print one line;
    returns (device, profile).

    ``threads`` sets torch's CPU thread count; by default :func:`~course_lib.core.device.configure_threads`
    picks one that small networks do not oversubscribe, unless you chose already (``OMP_NUM_THREADS``,
    or ``torch.set_num_threads`` after importing course_lib).
    """
    from .core import seed_everything
    from .core.device import configure_threads

    device = resolve_device("auto")
    n = configure_threads(device, threads)
    seed_everything(seed)
    prof = profile()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name} · {n} CPU thread{'s' if n != 1 else ''} · profile: {prof} · torch {torch.__version__}")
    return device, prof


def show_source(obj) -> None:
    """Display the source of a course_lib function or class, highlighted, in the notebook."""
    from IPython.display import Markdown, display

    display(Markdown(f"```python\n{inspect.getsource(obj).rstrip()}\n```"))
