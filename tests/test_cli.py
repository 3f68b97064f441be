"""The command line: errors as one line with exit 2, outputs, presets, SIGKILL + --resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from course_lib.core import read_metrics
from course_lib.core.metrics import TIMING_KEYS

# Small, fast runs on the tensor CartPole.
FAST = ["--env-backend", "tensor", "--num-envs", "16", "--num-steps", "16", "--num-epochs", "2",
        "--num-minibatches", "2", "--eval-episodes", "4", "--device", "cpu", "--quiet"]


def cli(*args, check=False, **kwargs):
    proc = subprocess.run([sys.executable, "-m", "course_lib", *map(str, args)], capture_output=True, text=True,
                          **kwargs)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def one_line_error(proc):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args,expected", [
    (["train", "dqn"], "unknown algorithm 'dqn'; accepted: ppo, sac"),
    (["train", "ppo", "--env", "Pong-v5"], "unknown environment 'Pong-v5' for backend 'gymnasium'; accepted: CartPole-v1,"),
    (["train", "ppo", "--env", "Acrobot-v1", "--env-backend", "tensor"], "accepted: CartPole-v1, Pendulum-v1"),
    (["train", "ppo", "--learning-rat", "0.1"], "unknown option --learning-rat for train ppo; accepted: --env, "),
    (["train", "ppo", "--gamma", "2"], "PPOConfig.gamma = 2.0 is out of range; accepted: 0.0 <= gamma <= 1.0"),
    (["train", "ppo", "--num-envs", "many"], "--num-envs 'many' is not accepted; accepted: num_envs >= 1"),
    (["train", "ppo", "--preset", "turbo"], "unknown preset 'turbo' for PPOConfig; accepted: speed"),
    (["fly", "ppo"], "unknown command 'fly'; accepted: train, bench"),
    (["bench", "ppo", "--benchmarks", "nope"], "unknown benchmark 'nope' for ppo; accepted: default, speed"),
])
def test_mistakes_print_one_line_and_exit_2(args, expected):
    line = one_line_error(cli(*args))
    assert line.startswith("course_lib: error: ") and expected in line, line


def test_help_lists_options():
    proc = cli("train", "ppo", "--help", check=True)
    assert "--total-steps" in proc.stdout and "--gae-lambda" in proc.stdout and "speed" in proc.stdout


def test_train_outputs_and_preset_override(tmp_path):
    out = tmp_path / "run"
    proc = cli("train", "ppo", "--preset", "speed", *FAST, "--total-steps", "1024", "--stop-at-target", "false",
               "--seed", "3", "--out", out, check=True)
    assert "eval_return" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for key in ("algo", "env", "seed", "total_steps", "eval_return", "train_return", "steps_per_second",
                "wall_seconds", "device"):
        assert key in summary
    assert summary["algo"] == "ppo" and summary["seed"] == 3 and summary["device"] == "cpu"
    # The preset supplies the rest; options on the command line win over it.
    assert summary["config"]["learning_rate"] == 3e-3 and summary["config"]["num_envs"] == 16
    assert summary["total_steps"] == 1024
    assert (out / "checkpoint.pt").is_file() and len(read_metrics(out)) == 4
    # The same --out again is refused rather than overwritten.
    line = one_line_error(cli("train", "ppo", *FAST, "--total-steps", "256", "--out", out))
    assert "--resume" in line and "--overwrite" in line


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    line = one_line_error(cli("train", "ppo", "--resume", "--out", tmp_path / "nothing"))
    assert "no checkpoint" in line


def _wait_for_rows(path, n, proc, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed: {proc.stderr.read()}")
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.02)
    raise AssertionError("run made no progress")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensor", "gymnasium"])
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path, backend):
    """Kill -9 in the middle of training, restart with --resume: same final metrics as a run never killed."""
    args = ["train", "ppo", "--env-backend", backend, "--num-envs", "8", "--num-steps", "64", "--num-epochs", "4",
            "--num-minibatches", "2", "--total-steps", str(512 * 60), "--checkpoint-every", str(512 * 5),
            "--deterministic", "--device", "cpu", "--eval-episodes", "5", "--seed", "7", "--quiet"]
    whole, split = tmp_path / "whole", tmp_path / "split"
    cli(*args, "--out", whole, check=True)

    proc = subprocess.Popen([sys.executable, "-m", "course_lib", *args, "--out", str(split)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_rows(split / "metrics.jsonl", 23, proc)  # past the checkpoints at 5, 10, 15, 20 updates
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (split / "summary.json").exists(), "the run was killed before it finished"
    rows_before = len(read_metrics(split))
    assert 23 <= rows_before < 60

    cli(*args, "--out", split, "--resume", check=True)
    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((split / "summary.json").read_text())
    assert b["resumes"] == 1
    for key in ("eval_return", "eval_returns", "train_return", "total_steps", "episodes", "updates"):
        assert a[key] == b[key], (key, a[key], b[key])

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]

    assert strip(read_metrics(split)) == strip(read_metrics(whole))


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_resumes(tmp_path):
    args = ["train", "ppo", *FAST, "--total-steps", str(256 * 400), "--checkpoint-every", str(10**9)]
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_rows(out / "metrics.jsonl", 5, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err
    rows = len(read_metrics(out))
    assert 5 <= rows < 400
    # The checkpoint holds the update the run stopped after: resuming does not redo it.
    proc = cli(*args, "--out", out, "--resume", check=True)
    assert len(read_metrics(out)) == 400
    assert [r["update"] for r in read_metrics(out)] == list(range(1, 401))


@pytest.mark.slow
def test_bench_prints_a_table(tmp_path):
    proc = cli("bench", "ppo", "--benchmarks", "speed", "--seeds", "0", "--out", tmp_path, check=True,
               timeout=300)
    header, row = proc.stdout.splitlines()[:2]
    assert "eval return" in header and "s to target" in header and "steps/s" in header
    assert row.split()[0] == "speed"
    (result,) = json.loads((tmp_path / "bench.json").read_text())
    assert result["benchmark"] == "speed" and result["seed"] == 0 and result["command_seconds"] > 0
