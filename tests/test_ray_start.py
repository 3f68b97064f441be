"""Starting the Ray backend prints nothing about authentication (chapter 05 showed Ray's notice on stderr)."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.agents.impala_actors import _DropRayTokenAuthNotice

ROOT = Path(__file__).resolve().parent.parent
NOTICE = "Token authentication is enabled for this Ray cluster"


def test_the_filter_drops_only_the_token_notice():
    keep = _DropRayTokenAuthNotice().filter

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(_DropRayTokenAuthNotice.LOGGER, logging.WARNING, __file__, 1, message, None, None)

    assert not keep(record(NOTICE + ". Set RAY_AUTH_MODE=disabled to opt out."))
    assert keep(record("Token authentication is disabled for this Ray cluster. Anyone with network access ..."))
    assert keep(record("Authentication token is missing or incorrect"))


@pytest.mark.slow
def test_a_local_ray_instance_starts_without_the_auth_notice(tmp_path):
    pytest.importorskip("ray")
    # A fresh process, as a notebook's kernel is: Ray not yet started, RAY_AUTH_MODE unset (so Ray
    # turns token authentication on and would announce it), its token file in a temporary home.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env.update(HOME=str(tmp_path), RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    script = ("from course_lib.agents.impala_actors import RayActorPool\n"
              "pool = RayActorPool(None, 1)\n"
              "assert pool.ray.is_initialized() and pool._owns_ray\n"
              "pool.close()\n"
              "assert not pool.ray.is_initialized()\n"
              "print('started and stopped')\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "started and stopped" in done.stdout
    assert "Token authentication" not in done.stderr + done.stdout, done.stderr
