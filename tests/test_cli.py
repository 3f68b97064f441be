"""The command line: errors as one line with exit 2, help, summary lines, threads, presets, SIGKILL + --resume."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from course_lib.agents import ALGORITHMS
from course_lib.cli import STEP_CHUNKS, _report, _rounding_note, main
from course_lib.core import read_metrics
from course_lib.core.metrics import TIMING_KEYS

NEEDS_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error on a machine without CUDA")

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
    (["train", "ppo", "--learning-rat", "0.1"], "unknown option --learning-rat for train ppo; accepted: --seed, "),
    (["train", "ppo", "--gamma", "2"], "PPOConfig.gamma = 2.0 is out of range; accepted: 0.0 <= gamma <= 1.0"),
    (["train", "ppo", "--num-envs", "many"], "--num-envs 'many' is not accepted; accepted: num_envs >= 1"),
    (["train", "ppo", "--preset", "turbo"], "unknown preset 'turbo' for PPOConfig; accepted: speed"),
    (["fly", "ppo"], "unknown command 'fly'; accepted: train, bench, search-speed, transformer-speed, gpu-check"),
    (["bench", "ppo", "--benchmarks", "nope"], "unknown benchmark 'nope' for ppo; accepted: default, speed"),
    (["bench", "ppo", "--seeds", "a,b"], "--seeds 'a,b' is not accepted; accepted: comma-separated integers >= 0"),
    (["train", "ppo", "--threads", "0"], "--threads '0' is not accepted; accepted: one integer >= 1"),
    (["search-speed", "--game", "chess"], "unknown game 'chess' for search-speed; accepted: tictactoe, connect4"),
    (["search-speed", "--evaluators", "magic"], "unknown evaluator 'magic'; accepted: trivial, mlp, resnet"),
    (["search-speed", "--batches", "0,64"], "--batches '0,64' is not accepted; accepted: comma-separated integers"),
    (["search-speed", "--simulations", "many"], "--simulations 'many' is not accepted"),
    (["search-speed", "--repeat", "2"], "unknown option --repeat for search-speed; accepted: --game, "),
    pytest.param(["train", "ppo", "--device", "cuda"], "device 'cuda' asked for but no CUDA GPU is visible",
                 marks=NEEDS_NO_CUDA),
    pytest.param(["bench", "ppo", "--device", "cuda:1"], "device 'cuda:1' asked for but no CUDA GPU is visible",
                 marks=NEEDS_NO_CUDA),
    pytest.param(["search-speed", "--device", "cuda"], "no CUDA GPU is visible", marks=NEEDS_NO_CUDA),
])
def test_mistakes_print_one_line_and_exit_2(capsys, args, expected):
    code, _, err = run_main(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    assert lines[0].startswith("course_lib: error: ") and expected in lines[0], lines[0]


@pytest.mark.parametrize("args,expected", [
    (["train", "dqn"], "unknown algorithm 'dqn'; accepted: ppo, sac"),
    (["search-speed", "--game", "chess"], "unknown game 'chess' for search-speed; accepted: tictactoe, connect4"),
    pytest.param(["train", "ppo", "--device", "cuda"], "device 'cuda' asked for but no CUDA GPU is visible",
                 marks=NEEDS_NO_CUDA),
])
def test_mistakes_end_to_end(args, expected):
    """The real command: no traceback, one line, status 2."""
    line = one_line_error(cli(*args))
    assert line.startswith("course_lib: error: ") and expected in line, line


def run_main(capsys, *args):
    """The command in this process (help and usage errors only: nothing that trains or sets threads)."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args,expected", [
    ([], ["commands:", "train ALGO", "bench ALGO", "search-speed", "gpu-check", "algorithms: ppo, sac"]),
    (["--help"], ["commands:", "COMMAND --help"]),
    (["-h"], ["commands:"]),
    (["train", "--help"], ["python -m course_lib train ALGO", "algorithms: ppo, sac", "--threads N"]),
    (["train", "ppo", "--help"], ["--total-steps", "--gae-lambda", "speed", "--threads N"]),
    (["train", "sac", "-h"], ["--precision", "--total-steps"]),
    (["bench", "--help"], ["--seeds LIST", "algorithms: ppo"]),
    (["bench", "ppo", "--help"], ["--seeds LIST", "--benchmarks LIST", "benchmarks of ppo:", "--preset speed"]),
    (["bench", "alphazero", "--help"], ["connect4", "--preset connect4"]),
    (["search-speed", "--help"], ["--game NAME", "tictactoe, connect4", "trivial, mlp, resnet", "--threads N"]),
    (["search-speed", "--game", "chess", "--help"], ["--simulations N"]),
    (["gpu-check", "--help"], ["--profile NAME", "full, tiny", "alphago"]),
])
def test_help_is_printed_not_an_error(capsys, args, expected):
    code, out, err = run_main(capsys, *args)
    assert code == 0 and err == "", (code, err)
    for text in expected:
        assert text in out, (text, out)


def test_missing_algorithm_is_still_a_mistake(capsys):
    code, out, err = run_main(capsys, "train")
    assert code == 2 and err.strip() == ("course_lib: error: missing algorithm; accepted: "
                                         + ", ".join(ALGORITHMS))


@pytest.mark.parametrize("algo,chunk", [("ppo", "rollouts of num_envs × num_steps steps"),
                                        ("impala",
                                         "learner batches of batch_unrolls × unroll_length × envs_per_actor"),
                                        ("sac", "iterations of num_envs"), ("alphazero", "iterations of num_envs"),
                                        ("muzero", "iterations of num_envs")])
def test_help_says_how_total_steps_is_rounded(capsys, algo, chunk):
    code, out, _ = run_main(capsys, "train", algo, "--help")
    (line,) = [line for line in out.splitlines() if line.strip().startswith("--total-steps")]
    assert code == 0 and f"the run takes whole {chunk}" in line and "rounded down to a multiple" in line, line
    assert set(STEP_CHUNKS) == set(ALGORITHMS) - {"alphago", "vit", "reasoner"}  # stages, epochs, steps: no env


@pytest.mark.parametrize("algo,values,expected", [
    ("ppo", {"num_envs": 8, "num_steps": 32, "total_steps": 2_000},
     " (--total-steps 2,000 rounded down to 7 whole rollouts of 256 = num_envs × num_steps)"),
    ("ppo", {"num_envs": 8, "num_steps": 32, "total_steps": 2_048}, ""),
    ("sac", {"num_envs": 4, "total_steps": 10},
     " (--total-steps 10 rounded down to 2 whole iterations of 4 = num_envs)"),
    ("muzero", {"num_envs": 16, "total_steps": 10},
     " (--total-steps 10 rounded up to 1 whole iteration of 16 = num_envs)"),
    ("impala", {"envs_per_actor": 16, "unroll_length": 16, "batch_unrolls": 4, "total_steps": 5_000},
     " (--total-steps 5,000 rounded down to 4 whole learner batches of 1,024 = batch_unrolls × unroll_length × "
     "envs_per_actor)"),
])
def test_rounding_note(algo, values, expected):
    assert _rounding_note(algo, ALGORITHMS[algo].config_class(**values)) == expected


def _summary(**changes):
    summary = {"algo": "ppo", "env": "CartPole-v1", "seed": 0, "total_steps": 256, "eval_return": 9.5,
               "eval_returns": [9.0, 10.0], "train_return": 21.0, "wall_seconds": 1.5, "steps_per_second": 200.0,
               "device": "cpu", "time_to_target": None}
    return {**summary, **changes}


@pytest.mark.parametrize("train_return", [None, float("nan")])
def test_report_without_a_finished_training_episode(capsys, train_return):
    _report(_summary(train_return=train_return), "runs/x", " (note)", threads=1)
    line = capsys.readouterr().out.splitlines()[0]
    assert "train_return n/a (no training episode finished)" in line and "256 steps (note) in 1.5 s" in line
    assert line.endswith("on cpu (1 thread)")


# One tiny run per agent, each too short for a training episode to end: the summary line must not crash.
NO_EPISODE = {
    "ppo": ["--env-backend", "tensor", "--num-envs", "4", "--num-steps", "4", "--total-steps", "16",
            "--num-epochs", "1", "--eval-episodes", "1"],
    "sac": ["--total-steps", "10", "--eval-episodes", "1"],
    "impala": ["--actors", "1", "--envs-per-actor", "2", "--unroll-length", "4", "--batch-unrolls", "1",
               "--total-steps", "8", "--eval-episodes", "1"],
    "muzero": ["--total-steps", "10", "--eval-episodes", "1"],     # the command
    "alphazero": ["--num-envs", "2", "--num-simulations", "2", "--total-steps", "2", "--channels", "4", "--blocks",
                  "1", "--eval-episodes", "1", "--eval-simulations", "1"],
}


@pytest.mark.parametrize("algo", list(NO_EPISODE))
def test_train_before_any_episode_ends_prints_its_summary(tmp_path, algo):
    assert set(NO_EPISODE) == set(ALGORITHMS) - {"alphago", "vit", "reasoner"}  # no episodes of their own
    proc = cli("train", algo, *NO_EPISODE[algo], "--device", "cpu", "--out", tmp_path / "run", "--quiet",
               check=True, timeout=300)
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"{algo} ") and first.endswith("(1 thread)"), first
    if algo != "alphazero":   # board games report games against the reference players instead
        assert "train_return n/a (no training episode finished)" in first, first
    if algo == "muzero":
        assert "10 rounded up to 1 whole iteration of 16" in first, first


def test_summary_line_says_total_steps_was_rounded_down(tmp_path):
    proc = cli("train", "ppo", *FAST, "--num-envs", "4", "--num-steps", "8", "--num-epochs", "1",
               "--total-steps", "100", "--threads", "2", "--out", tmp_path / "run", check=True)
    first = proc.stdout.splitlines()[0]
    assert " 96 steps (--total-steps 100 rounded down to 3 whole rollouts of 32 = num_envs × num_steps)" in first
    assert first.endswith("on cpu (2 threads)"), first
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["total_steps"] == 96


THREADS_SCRIPT = """
import os, sys, torch
from course_lib.core.device import configure_threads, user_chose_threads
case = sys.argv[1]
if case == "default":
    print(configure_threads("cpu"), torch.get_num_threads())
elif case == "set_after_import":
    n = torch.get_num_threads() + 1     # anything but torch's default
    torch.set_num_threads(n)
    print(configure_threads("cpu") == n, torch.get_num_threads() == n)
elif case == "given_then_default":
    a = configure_threads("cpu", 3)
    print(a, configure_threads("cpu"), torch.get_num_threads())
elif case == "auto_then_user":
    configure_threads("cpu")
    torch.set_num_threads(2)
    print(configure_threads("cpu"), torch.get_num_threads())
elif case == "environment":
    before = torch.get_num_threads()      # what torch made of OMP_NUM_THREADS
    print(user_chose_threads(), before == configure_threads("cpu") == torch.get_num_threads())
"""


@pytest.mark.parametrize("case,env,expected", [
    ("default", {}, "1 1"),
    ("set_after_import", {}, "True True"),
    ("given_then_default", {}, "3 3 3"),
    ("auto_then_user", {}, "2 2"),
    ("environment", {"OMP_NUM_THREADS": "3"}, "True True"),
])
def test_configure_threads_leaves_a_users_choice_alone(case, env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, case], capture_output=True, text=True,
                          env={**clean, **env})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected.split()


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
