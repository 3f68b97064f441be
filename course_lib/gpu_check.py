"""One command for the day a GPU is available: every agent trains briefly on it, and the speeds
that ``book/results.md`` quotes are measured.

    make gpu-check                     # python -m course_lib gpu-check --device cuda (full profile)
    make gpu-check DEVICE=cpu          # the same checks in the tiny profile: seconds; part of make test
    python -m course_lib.gpu_check --device cuda --profile tiny    # a first smoke test on the GPU
    python -m course_lib gpu-check --only ppo,search --out gpu.json

Every check runs on the requested device and fails loudly: an exception (a tensor on the wrong
device raises one inside torch), a summary that names another device, or a CUDA run that left
nothing in the GPU's memory, marks the check FAILED with its traceback, the other checks still
run, and the command exits with status 1. The JSON (written after every check, so a session that
is cut off keeps what it measured) holds the machine, each check's settings, measurements, peak
GPU memory and seconds; the printed Markdown table can go into ``book/results.md`` as it is.

Adding an algorithm is a few lines: a function decorated with :func:`register`, with the config
fields of each profile in one small dict, that trains (usually through :meth:`Context.train`)
and returns :class:`Measured` values. ``tests/test_gpu_check.py`` fails when an algorithm of
:data:`course_lib.agents.ALGORITHMS` has no check.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch

from .core.device import synchronize

PROFILES = ("full", "tiny")

HELP = """usage: python -m course_lib gpu-check [--device cuda] [--profile full|tiny] [--only NAME,...]
                                     [--out FILE] [--threads N]

Trains every agent briefly on the device and measures the speeds book/results.md quotes; prints a
Markdown table, writes the JSON to --out, exits 1 if any check failed. At most 8 minutes on one
H100 in the full profile; the tiny profile (the default on a CPU) takes seconds per check.

  --device DEVICE    cuda (default), cuda:N, cpu or mps
  --profile NAME     {profiles} (default: full on a GPU, tiny on a CPU)
  --only LIST        comma-separated checks, of {checks} (default: all)
  --out FILE         the JSON (default runs/gpu-check-DEVICE.json)
  --threads N        CPU threads of torch (default 1, or OMP_NUM_THREADS)"""


class DeviceMismatch(RuntimeError):
    """A check ran somewhere other than the device it was asked to run on."""


class Measured(NamedTuple):
    """One figure of a check: what it is (in words, with the setting that matters), value and unit."""
    what: str
    value: float | None
    unit: str


@dataclass(frozen=True)
class Check:
    """A registered check: ``run(ctx, fields)`` trains/measures with the profile's ``fields``;
    ``algo`` names the :data:`~course_lib.agents.ALGORITHMS` entry whose config ``fields`` are for."""
    name: str
    title: str
    run: Callable[["Context", dict[str, Any]], list[Measured]]
    profiles: dict[str, dict[str, Any]]
    algo: str | None = None


CHECKS: dict[str, Check] = {}


def register(name: str, title: str, *, full: dict[str, Any], tiny: dict[str, Any], algo: str | None = None):
    """Decorator adding a check. ``full``/``tiny``: the settings of each profile, passed to the
    check as ``fields``; with ``algo``, they are that agent's config fields as its config spells
    them (``preset`` names a preset), and the tests build both profiles' configs."""
    def add(fn: Callable[["Context", dict[str, Any]], list[Measured]]):
        if name in CHECKS:
            raise ValueError(f"gpu-check {name!r} is registered twice")
        CHECKS[name] = Check(name, title, fn, {"full": full, "tiny": tiny}, algo)
        return fn
    return add


def make_config(algo: str, fields: dict[str, Any], device: str, seed: int = 0):
    """The validated config of ``algo`` for a check's ``fields`` on ``device``."""
    from .agents import ALGORITHMS

    fields = dict(fields)
    preset = fields.pop("preset", None)
    return ALGORITHMS[algo].config_class.from_dict({"seed": seed, **fields, "device": device}, preset=preset)


@dataclass
class Context:
    """What a check needs: the device, the profile, a directory for its runs."""
    device: torch.device
    profile: str
    work_dir: Path
    seed: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def expect_device(self, what: str, device: str | torch.device) -> None:
        """Raise :class:`DeviceMismatch` unless ``device`` is the one this check runs on."""
        if not same_device(torch.device(device), self.device):
            raise DeviceMismatch(f"{what} ran on {device}, not on the requested {self.device}")

    def train(self, algo: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Train ``algo`` (a :data:`course_lib.agents.ALGORITHMS` name) with the config ``fields``
        (``preset`` names a preset) on this device; returns its summary, checked for the device."""
        from .agents import ALGORITHMS

        config = make_config(algo, fields, str(self.device), self.seed)
        summary = ALGORITHMS[algo].load().train(config, str(self.work_dir / algo), overwrite=True, progress=False)
        self.expect_device(f"{algo}'s training", summary["device"])
        return summary


def same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` are the same device when 0 is the current one."""
    def index(d: torch.device) -> int | None:
        if d.type == "cuda" and d.index is None and torch.cuda.is_available():
            return torch.cuda.current_device()
        return d.index
    return a.type == b.type and index(a) == index(b)


def _rate(count: float, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


# ------------------------------------------------------------------------------------ checks
# Each check keeps the config fields it sets in one dict per profile (full: about a minute on
# one H100, all checks together at most 8; tiny: seconds on a CPU).

@register("ppo", "PPO, speed preset, batched tensor CartPole", algo="ppo",
          full={"preset": "speed", "num_envs": 4096, "num_steps": 32, "total_steps": 4096 * 32 * 12,
                "stop_at_target": False, "eval_episodes": 64, "checkpoint_every": 10**9},
          tiny={"preset": "speed", "num_envs": 16, "num_steps": 8, "total_steps": 16 * 8 * 2,
                "stop_at_target": False, "eval_episodes": 2})
def check_ppo(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    s = ctx.train("ppo", fields)
    return [Measured(f"env steps/s, {fields['num_envs']:,} envs", s["steps_per_second"], "steps/s")]


@register("sac", "SAC, float32, Pendulum-v1", algo="sac",
          full={"env": "Pendulum-v1", "total_steps": 4_000, "learning_starts": 1_000, "eval_episodes": 2},
          tiny={"env": "Pendulum-v1", "total_steps": 200, "learning_starts": 100, "batch_size": 32,
                "hidden_size": 32, "eval_episodes": 1})
def check_sac(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    s = ctx.train("sac", fields)
    return [Measured("learning steps/s (env step + update)", s.get("learning_steps_per_second"), "steps/s")]


@register("sac-bf16", "SAC, bfloat16 hidden layers (its mixed-precision path), Pendulum-v1", algo="sac",
          full={**CHECKS["sac"].profiles["full"], "precision": "bfloat16"},
          tiny={**CHECKS["sac"].profiles["tiny"], "precision": "bfloat16"})
def check_sac_bf16(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    return check_sac(ctx, fields)


@register("impala", "IMPALA, local actor processes, learner on the device, CartPole-v1", algo="impala",
          full={"actors": 4, "envs_per_actor": 32, "total_steps": 200_000, "eval_episodes": 8,
                "checkpoint_every": 10**9},
          tiny={"actors": 1, "envs_per_actor": 4, "unroll_length": 8, "batch_unrolls": 1, "total_steps": 64,
                "eval_episodes": 1})
def check_impala(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    s = ctx.train("impala", fields)
    return [Measured("learner frames/s", s["steps_per_second"], "frames/s")]


@register("search", "Batched MCTS, AlphaZero ResNet (Connect Four preset size), from the empty board",
          full={"game": "connect4", "simulations": 200, "batches": (256, 1024, 4096), "repeats": 3},
          tiny={"game": "connect4", "simulations": 4, "batches": (2,), "repeats": 1})
def check_search(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    from .search.benchmark import measure

    out = []
    for batch in fields["batches"]:
        row = measure(fields["game"], fields["simulations"], batch, "resnet", ctx.device, fields["repeats"])
        ctx.expect_device("search-speed", row["device"])
        out += [Measured(f"sims/s, batch {batch:,}, {fields['simulations']} sims", row["sims_per_second"], "sims/s"),
                Measured(f"network's share of search time, batch {batch:,}", row["evaluator_share"], "share")]
    return out


@register("transformer", "Course transformer: training tokens/s against nn.TransformerEncoder, cached sampling",
          full={"d_model": 256, "layers": 6, "heads": 8, "batch": 64, "seq": 256, "context": 256, "new_tokens": 64,
                "sample_batch": 1, "repeats": 3},
          tiny={"d_model": 16, "layers": 1, "heads": 2, "batch": 2, "seq": 8, "context": 8, "new_tokens": 2,
                "sample_batch": 1, "repeats": 1})
def check_transformer(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    from .nets.benchmark import measure

    row = measure(ctx.device, **fields)
    ctx.expect_device("transformer-speed", row["device"])
    if not row["sample_same_tokens"]:
        raise RuntimeError("cached sampling drew other tokens than recomputing the context")
    size = f"d_model {fields['d_model']}, {fields['layers']} layers"
    return [Measured(f"training tokens/s, {size}, {fields['batch']} x {fields['seq']}",
                     row["train_ours_tokens_per_second"], "tokens/s"),
            Measured("  ... against nn.TransformerEncoder of the same size", row["train_ratio"], "x"),
            Measured(f"sampling tokens/s with the cache after {fields['context']} tokens",
                     row["sample_cached_tokens_per_second"], "tokens/s"),
            Measured("  ... against recomputing the context", row["sample_ratio"], "x")]


@register("alphazero", "AlphaZero self-play, Connect Four preset", algo="alphazero",
          full={"preset": "connect4", "num_envs": 1024, "total_steps": 1024 * 24, "eval_episodes": 2,
                "eval_simulations": 16, "eval_every": 0, "checkpoint_every": 10**9},
          tiny={"preset": "connect4", "num_envs": 4, "num_simulations": 4, "total_steps": 8, "channels": 8,
                "blocks": 1, "batch_size": 16, "eval_episodes": 1, "eval_simulations": 2, "eval_every": 0})
def check_alphazero(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    s = ctx.train("alphazero", fields)
    return [Measured(f"self-play moves/s, {fields['num_envs']:,} games at once", s["steps_per_second"], "moves/s")]


@register("muzero", "MuZero, batched tensor CartPole", algo="muzero",
          full={"env": "CartPole-v1", "env_backend": "tensor", "num_envs": 256, "total_steps": 256 * 40,
                "learning_starts": 2_048, "eval_every": 0, "eval_episodes": 8, "target_return": None,
                "checkpoint_every": 10**9},
          tiny={"env": "CartPole-v1", "env_backend": "tensor", "num_envs": 4, "num_simulations": 4,
                "total_steps": 4 * 40, "learning_starts": 8, "batch_size": 8, "unroll_steps": 2, "td_steps": 4,
                "updates_per_iteration": 1, "eval_every": 0, "eval_episodes": 1, "target_return": None})
def check_muzero(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    s = ctx.train("muzero", fields)
    if not s["updates"]:     # replay holds finished episodes only: the budget must outlast a few
        raise RuntimeError(f"muzero made no update in {s['total_steps']} steps; raise total_steps")
    return [Measured("updates/s (per second of learning)", _rate(s["updates"], s["time_learning"]), "updates/s"),
            Measured(f"env steps/s, {fields['num_envs']:,} envs, search and learning", s["steps_per_second"],
                     "steps/s")]


@register("alphago", "AlphaGo pipeline in small (SL, RL, value, MCTS), tic-tac-toe", algo="alphago",
          full={"preset": "quick"},
          tiny={"preset": "quick", "expert_games": 50, "sl_steps": 10, "rl_iterations": 2, "rl_games": 16,
                "value_games": 64, "value_steps": 10, "simulations": (2,), "eval_episodes": 2})
def check_alphago(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    from .agents import load_agent

    s = ctx.train("alphago", fields)
    for name, net in load_agent(ctx.work_dir / "alphago", ctx.device).nets.items():
        ctx.expect_device(f"alphago's {name}", next(net.parameters()).device)
    games = s["config"]["rl_iterations"] * s["config"]["rl_games"]
    return [Measured("RL self-play games/s (REINFORCE stage)", _rate(games, s["seconds"].get("rl_policy")), "games/s"),
            Measured("whole pipeline", s["seconds"]["total"], "s")]


@register("vit", "ViT on the 8×8 digits (the configuration of the CPU target), scored on the test split",
          algo="vit", full={"checkpoint_every": 0},
          tiny={"epochs": 1, "d_model": 16, "n_heads": 2, "n_layers": 1, "eval_every": 0, "checkpoint_every": 0})
def check_vit(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    from .agents import load_agent

    s = ctx.train("vit", fields)
    ctx.expect_device("vit's network", next(load_agent(ctx.work_dir / "vit", ctx.device).net.parameters()).device)
    epochs = f"{s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}"
    return [Measured(f"digits test accuracy after {epochs}", s["test_accuracy"], "share"),
            Measured("training images/s", s["images_per_second"], "images/s"),
            Measured("training time", s["train_seconds"], "s")]


@register("reasoner", "Reasoning GPT on arithmetic traces (chapter 07's model), greedy accuracy on held-out problems",
          algo="reasoner", full={"checkpoint_every": 0},
          tiny={"preset": "quick", "steps": 4, "eval_problems": 2})
def check_reasoner(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    from .agents import load_agent

    s = ctx.train("reasoner", fields)
    ctx.expect_device("reasoner's model", next(load_agent(ctx.work_dir / "reasoner", ctx.device).model.parameters())
                      .device)
    out = [Measured(f"training steps/s ({s['config']['batch_size']} problems a step)", _rate(s["config"]["steps"], s["train_seconds"]),
                    "steps/s"), Measured("training time", s["train_seconds"], "s")]
    if s["greedy_accuracy"] > 0:          # the tiny profile's few steps solve nothing
        out.insert(0, Measured(f"greedy accuracy on {s['eval_problems']} held-out problems", s["greedy_accuracy"],
                               "share"))
    return out


@register("vit-cifar10-speed", "ViT of the cifar10 preset: training steps on random 32×32 images (no data "
          "download), to size a 200-epoch run", full={"batch_size": 128, "steps": 30},
          tiny={"batch_size": 2, "steps": 1, "d_model": 24, "n_heads": 2, "n_layers": 1, "d_ff": 24})
def check_vit_cifar10_speed(ctx: Context, fields: dict[str, Any]) -> list[Measured]:
    import torch.nn.functional as F

    from .agents.vit import ViTConfig, build_networks

    sizes = {k: fields[k] for k in ("d_model", "n_heads", "n_layers", "d_ff") if k in fields}
    cfg = ViTConfig.from_dict({**sizes, "device": str(ctx.device)}, preset="cifar10")
    net = build_networks(cfg)["net"].to(ctx.device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate)
    generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    images = torch.randn(fields["batch_size"], 3, 32, 32, device=ctx.device, generator=generator)
    labels = torch.randint(10, (fields["batch_size"],), device=ctx.device, generator=generator)

    def step() -> None:
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()                                                   # warm-up: kernels chosen, memory allocated
    synchronize(ctx.device)
    start = time.perf_counter()
    for _ in range(fields["steps"]):
        step()
    synchronize(ctx.device)
    seconds = time.perf_counter() - start
    ctx.expect_device("the CIFAR-10 ViT", next(net.parameters()).device)
    per_second = fields["batch_size"] * fields["steps"] / seconds
    return [Measured(f"training images/s, batch {fields['batch_size']}, "
                     f"{sum(p.numel() for p in net.parameters()) / 1e6:.1f}M parameters", per_second, "images/s"),
            Measured("one epoch of 50,000 images (estimate)", 50_000 / per_second, "s")]


# ------------------------------------------------------------------------------------ running
def machine(device: torch.device, threads: int) -> dict[str, Any]:
    """Where the figures were measured."""
    info: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": threads,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    bf16_supported=torch.cuda.is_bf16_supported())
    else:
        info["device_name"] = info["cpu"] if device.type == "cpu" else device.type
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_check(check: Check, ctx: Context) -> dict[str, Any]:
    """Run one check; its record for the JSON (``ok`` false and ``error`` set when it failed)."""
    fields = check.profiles[ctx.profile]
    record: dict[str, Any] = {"title": check.title, "settings": fields, "ok": False, "measured": [],
                              "seconds": None, "error": None}
    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)
    synchronize(ctx.device)
    start = time.perf_counter()
    try:
        measured = check.run(ctx, dict(fields))
        synchronize(ctx.device)
        if cuda and torch.cuda.max_memory_allocated(ctx.device) == 0:
            raise DeviceMismatch(f"{check.name} allocated nothing on {ctx.device}: its work ran elsewhere")
        record.update(ok=True, measured=[m._asdict() for m in measured])
    except Exception as exc:                 # every failure is reported; the other checks still run
        record["error"] = f"{type(exc).__name__}: {exc}"
        print(f"\ngpu-check {check.name} FAILED:", file=sys.stderr)
        traceback.print_exc()
    record["seconds"] = time.perf_counter() - start
    if cuda:
        record["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(ctx.device) / 2**20, 1)
    return record


def run_checks(device: torch.device, profile: str, names: list[str], out: Path, threads: int) -> dict[str, Any]:
    """Run the checks ``names`` in order, print the table, write ``out``; returns the report."""
    import tempfile

    report: dict[str, Any] = {"profile": profile, "machine": machine(device, threads), "checks": {}, "ok": True}
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"gpu-check on {report['machine']['device_name']} ({device}), profile {profile}: {', '.join(names)}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        ctx = Context(device, profile, Path(work))
        for name in names:
            record = run_check(CHECKS[name], ctx)
            report["checks"][name] = record
            report["ok"] = report["ok"] and record["ok"]
            report["seconds"] = time.perf_counter() - start
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            status = "ok" if record["ok"] else "FAILED"
            print(f"  {name:<10} {status:<6} {record['seconds']:6.1f} s", flush=True)
    print()
    print(format_table(report))
    print(f"\nresults: {out}")
    failed = [n for n, r in report["checks"].items() if not r["ok"]]
    if failed:
        print(f"gpu-check: {len(failed)} of {len(names)} checks FAILED: "
              + "; ".join(f"{n}: {report['checks'][n]['error']}" for n in failed), file=sys.stderr)
    return report


def _value(m: dict[str, Any]) -> str:
    v = m["value"]
    if v is None:
        return "n/a"
    if m["unit"] == "share":
        return f"{v:.0%}"
    if m["unit"] == "s":
        return f"{v:.1f} s"
    return f"{v:,.0f} {m['unit']}" if v >= 100 else f"{v:,.2f} {m['unit']}"


def format_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one row per measurement, then the check's seconds and status."""
    m = report["machine"]
    lines = [f"{m['device_name']} ({m['device']}), torch {m['torch']}"
             + (f", CUDA {m['cuda']}" if m.get("cuda") else "") + f", profile {report['profile']}, {m['date']}",
             "",
             "| check | measurement | value | check took | status |",
             "| --- | --- | --- | --- | --- |"]
    for name, record in report["checks"].items():
        status = "ok" if record["ok"] else f"FAILED: {record['error']}"
        rows = record["measured"] or [{"what": record["title"], "value": None, "unit": ""}]
        for i, row in enumerate(rows):
            took = f"{record['seconds']:.1f} s" if i == 0 else ""
            lines.append(f"| {name if i == 0 else ''} | {row['what']} | {_value(row)} | {took} | "
                         f"{status if i == 0 else ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from .cli import main

    raise SystemExit(main(["gpu-check", *sys.argv[1:]]))
