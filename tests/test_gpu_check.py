"""`make gpu-check DEVICE=cpu`: every check runs in the tiny CPU profile, so the GPU path cannot rot
before the day a GPU is lent; failures and device mismatches are reported, not swallowed."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_lib import gpu_check
from course_lib.agents import ALGORITHMS
from course_lib.gpu_check import CHECKS, Context, DeviceMismatch, Measured, register, run_checks

ROOT = Path(__file__).resolve().parents[1]


def test_every_algorithm_has_a_check():
    # A new agent in ALGORITHMS must register a gpu-check (a few lines in course_lib/gpu_check.py).
    covered = {check.algo for check in CHECKS.values()}
    assert set(ALGORITHMS) <= covered, set(ALGORITHMS) - covered
    assert {"alphago", "search", "sac-bf16"} <= set(CHECKS)
    for check in CHECKS.values():
        assert set(check.profiles) == set(gpu_check.PROFILES)


@pytest.mark.parametrize("profile", gpu_check.PROFILES)
def test_every_profile_builds_valid_configs(profile):
    """The full profile only runs on the day a GPU is lent: its field names and values are checked now."""
    from course_lib.games import GAMES

    for check in CHECKS.values():
        fields = check.profiles[profile]
        if check.algo is not None:
            config = gpu_check.make_config(check.algo, fields, "cpu")
            assert config.device == "cpu" and config.seed == 0
            for key, value in fields.items():
                assert key == "preset" or getattr(config, key) == value, (check.name, key)
    assert CHECKS["search"].profiles[profile]["game"] in GAMES
    if profile == "full":
        assert CHECKS["ppo"].profiles[profile]["num_envs"] == 4096          # what the issue asks to measure
        assert CHECKS["sac-bf16"].profiles[profile]["precision"] == "bfloat16"


def test_makefile_target_runs_the_command_this_file_tests():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^gpu-check:.*\n\t(.+)$", makefile, re.MULTILINE).group(1)
    assert "-m course_lib gpu-check --device $(DEVICE)" in recipe
    assert re.search(r"^DEVICE \?= cuda$", makefile, re.MULTILINE)


@pytest.mark.slow
def test_gpu_check_cpu_profile_runs_every_check(tmp_path):
    """What `make gpu-check DEVICE=cpu` runs: all checks pass, each measures something, JSON and table agree."""
    out = tmp_path / "gpu-check-cpu.json"
    proc = subprocess.run([sys.executable, "-m", "course_lib", "gpu-check", "--device", "cpu", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["ok"] and report["profile"] == "tiny" and list(report["checks"]) == list(CHECKS)
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch"] == torch.__version__
    for name, record in report["checks"].items():
        assert record["ok"] and record["error"] is None, (name, record["error"])
        assert record["settings"] == json.loads(json.dumps(CHECKS[name].profiles["tiny"]))
        assert record["measured"], name
        for m in record["measured"]:
            assert m["value"] is not None and m["value"] > 0, (name, m)
    table = proc.stdout[proc.stdout.index("| check |"):]
    for name in CHECKS:
        assert f"| {name} |" in table


def test_a_failing_check_is_reported_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "CHECKS", {})
    calls = []

    @register("broken", "raises", full={}, tiny={"x": 1})
    def broken(ctx, fields):
        calls.append(("broken", fields))
        raise RuntimeError("something on the wrong device")

    @register("elsewhere", "reports another device", full={}, tiny={})
    def elsewhere(ctx, fields):
        calls.append(("elsewhere", fields))
        ctx.expect_device("the fake agent", "meta")
        return []

    @register("fine", "measures", full={}, tiny={})
    def fine(ctx, fields):
        calls.append(("fine", fields))
        return [Measured("things/s", 12.5, "things/s")]

    out = tmp_path / "report.json"
    report = run_checks(torch.device("cpu"), "tiny", ["broken", "elsewhere", "fine"], out, threads=1)
    assert [c[0] for c in calls] == ["broken", "elsewhere", "fine"] and calls[0][1] == {"x": 1}
    assert not report["ok"]
    assert report["checks"]["broken"]["error"] == "RuntimeError: something on the wrong device"
    assert report["checks"]["elsewhere"]["error"].startswith("DeviceMismatch: the fake agent ran on meta")
    assert report["checks"]["fine"]["ok"] and report["checks"]["fine"]["measured"][0]["value"] == 12.5
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    captured = capsys.readouterr()
    assert "Traceback" in captured.err and "2 of 3 checks FAILED" in captured.err
    assert "| fine | things/s | 12.50 things/s |" in captured.out


def test_expect_device():
    ctx = Context(torch.device("cpu"), "tiny", Path("."))
    ctx.expect_device("x", "cpu")
    ctx.expect_device("x", torch.device("cpu"))
    with pytest.raises(DeviceMismatch, match="x ran on cuda, not on the requested cpu"):
        ctx.expect_device("x", "cuda")


def test_command_line_mistakes_are_one_line():
    def run(*args):
        return subprocess.run([sys.executable, "-m", "course_lib.gpu_check", *args], capture_output=True, text=True)

    proc = run("--only", "ppo,dqn", "--device", "cpu")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown check 'dqn' for gpu-check; accepted: ppo, sac" in proc.stderr
    proc = run("--profile", "huge", "--device", "cpu")
    assert proc.returncode == 2 and "accepted: full, tiny" in proc.stderr
    if not torch.cuda.is_available():
        proc = run()           # the default device is cuda
        assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "no CUDA GPU" in proc.stderr
    proc = run("--help")
    assert proc.returncode == 0 and "--profile" in proc.stdout and "alphago" in proc.stdout
