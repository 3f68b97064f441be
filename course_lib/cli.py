"""Command line: ``python -m course_lib train|bench ALGO [options]``.

    python -m course_lib train ppo --env CartPole-v1 --total-steps 100000 --seed 0 \\
        --device auto --out runs/ppo [--preset speed] [--resume]
    python -m course_lib bench ppo [--seeds 0,1,2] [--benchmarks default,speed]
    python -m course_lib search-speed --game connect4 --batches 1,64,256

Every field of the algorithm's config is an option (``--gae-lambda 0.9``); options
override the preset's values. Mistakes print one line naming what is accepted and exit
with status 2.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

from .agents import ALGORITHMS, Algorithm

USAGE = """usage: python -m course_lib train ALGO [--OPTION VALUE ...] [--preset NAME] [--out DIR] [--resume] [--overwrite] [--quiet]
       python -m course_lib bench ALGO [--seeds 0,1,2] [--benchmarks NAME,...] [--out DIR]
       python -m course_lib train ALGO --help      (the options of ALGO)
       python -m course_lib search-speed [--game connect4] [--simulations 200] [--batches 1,64,256]

algorithms: {algos}"""

RUN_FLAGS = ("preset", "out", "resume", "overwrite", "quiet")


class UsageError(Exception):
    """A command-line mistake; printed as one line, exit status 2."""


def _fail(message: str) -> NoReturn:
    print(f"course_lib: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _algorithm(name: str | None) -> Algorithm:
    if name is None or name.startswith("-"):
        raise UsageError(f"missing algorithm; accepted: {', '.join(ALGORITHMS)}")
    if name not in ALGORITHMS:
        raise UsageError(f"unknown algorithm {name!r}; accepted: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def _split_options(argv: list[str], accepted: list[str], flags: tuple[str, ...], what: str,
                   is_bool=lambda name: False) -> dict[str, str | bool]:
    """``--name value``/``--name=value`` pairs; ``flags`` and bool options may stand alone."""
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r} for {what}; options start with --")
        name, has_value, value = token[2:].partition("=")
        key = name.replace("-", "_")
        if key not in accepted:
            listed = ", ".join("--" + a.replace("_", "-") for a in accepted)
            raise UsageError(f"unknown option --{name} for {what}; accepted: {listed}")
        standalone = key in flags or is_bool(key)
        if has_value:
            out[key] = value
        elif standalone and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
            out[key] = True
        elif i + 1 < len(argv):
            i += 1
            out[key] = argv[i]
        else:
            raise UsageError(f"option --{name} needs a value")
        i += 1
    return out


def _print_help(algo: Algorithm) -> None:
    cls = algo.config_class
    print(f"python -m course_lib train {algo.name} [options]\n")
    print("run options:")
    print("  --preset NAME        named configuration: " + (", ".join(cls.presets) or "(none)"))
    print("  --out DIR            run directory (default runs/ALGO-ENV-seedN)")
    print("  --resume             continue the run in --out from its checkpoint")
    print("  --overwrite          replace a run already in --out")
    print("  --quiet              no progress bar")
    print(f"\n{cls.__name__} options:")
    for flag, text in cls.help_lines():
        print(f"  {flag:<22} {text}")


def _train(argv: list[str]) -> int:
    from .core import ConfigError, RunExists, stored_config
    from .envs import UnknownEnvironment

    algo = _algorithm(argv[0] if argv else None)
    cls = algo.config_class
    if any(a in ("-h", "--help") for a in argv[1:]):
        _print_help(algo)
        return 0
    fields = cls.field_names()
    raw = _split_options(argv[1:], [*fields, *RUN_FLAGS], ("resume", "overwrite", "quiet"),
                         f"train {algo.name}", is_bool=lambda k: k in fields and cls.is_bool(k))
    run_opts = {k: raw.pop(k) for k in RUN_FLAGS if k in raw}
    for flag in ("resume", "overwrite", "quiet"):
        if not isinstance(run_opts.get(flag, False), bool):
            raise UsageError(f"--{flag} takes no value")
    try:
        explicit = {k: (v if isinstance(v, bool) else cls.parse_value(k, v)) for k, v in raw.items()}
        resume = run_opts.get("resume", False)
        if resume:
            if "out" not in run_opts:
                raise UsageError("--resume needs --out DIR (the run to continue)")
            try:
                stored = stored_config(run_opts["out"])
            except FileNotFoundError:
                raise UsageError(f"--resume: no checkpoint in {run_opts['out']}") from None
            config = cls.from_dict({**stored, **explicit})
        else:
            config = cls.from_dict(explicit, preset=run_opts.get("preset"))
    except (ConfigError, UnknownEnvironment) as exc:
        raise UsageError(str(exc)) from None
    out = run_opts.get("out") or f"runs/{algo.name}-{config.env}-seed{config.seed}"
    try:
        summary = algo.load().train(config, out, resume=resume, overwrite=run_opts.get("overwrite", False),
                                    progress=not run_opts.get("quiet", False))
    except (ConfigError, RunExists) as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt as exc:
        print(f"\n{exc or 'interrupted'}", file=sys.stderr)
        return 130
    _report(summary, out)
    return 0


def _game_results(evaluation: dict) -> list[str]:
    """One line per (player, opponent): wins/draws/losses moving first and second."""
    lines = []
    for opponent, by_player in evaluation.items():
        if not isinstance(by_player, dict):
            continue
        for player, sides in by_player.items():
            first, second = sides["as_first"], sides["as_second"]
            lines.append(f"  {player:>6} vs {opponent:<9} first: {first['wins']}W {first['draws']}D {first['losses']}L"
                         f" · second: {second['wins']}W {second['draws']}D {second['losses']}L")
    return lines


def _report(summary: dict, out: str) -> None:
    sps = summary.get("steps_per_second")
    if "evaluation" in summary:  # board games: results against the reference players
        print(f"{summary['algo']} {summary['env']} seed {summary['seed']}: {summary['total_steps']:,} self-play moves "
              f"({summary['games']:,} games) in {summary['train_seconds']:.1f} s of training"
              + (f" ({sps:,.0f} moves/s)" if sps else "") + f" on {summary['device']}")
        print("\n".join(_game_results(summary["evaluation"])))
        print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")
        return
    target = ""
    if summary.get("time_to_target") is not None:
        target = (f" · reached {summary['target_return']:g} after {summary['steps_to_target']:,} steps, "
                  f"{summary['time_to_target']:.1f} s")
    print(f"{summary['algo']} {summary['env']} seed {summary['seed']}: eval_return {summary['eval_return']:.1f} "
          f"(greedy, {len(summary['eval_returns'])} episodes) · train_return {summary['train_return']:.1f} · "
          f"{summary['total_steps']:,} steps in {summary['wall_seconds']:.1f} s"
          + (f" ({sps:,.0f} steps/s)" if sps else "") + f" on {summary['device']}{target}")
    print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")


def _bench(argv: list[str]) -> int:
    algo = _algorithm(argv[0] if argv else None)
    benchmarks = algo.load().BENCHMARKS
    raw = _split_options(argv[1:], ["seeds", "benchmarks", "out", "device"], (), f"bench {algo.name}")
    try:
        seeds = [int(s) for s in str(raw.get("seeds", "0,1,2")).split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {raw['seeds']!r} is not accepted; accepted: comma-separated integers") from None
    names = [n.strip() for n in str(raw.get("benchmarks", ",".join(benchmarks))).split(",") if n.strip()]
    for name in names:
        if name not in benchmarks:
            raise UsageError(f"unknown benchmark {name!r} for {algo.name}; accepted: {', '.join(benchmarks)}")
    out = Path(raw["out"]) if "out" in raw else Path(tempfile.mkdtemp(prefix=f"bench-{algo.name}-"))
    rows = []
    for name in names:
        preset, extra = benchmarks[name]
        for seed in seeds:
            run_dir = out / f"{name}-seed{seed}"
            cmd = [sys.executable, "-m", "course_lib", "train", algo.name]
            if preset:
                cmd += ["--preset", preset]
            for key, value in {**extra, "seed": seed, **({"device": raw["device"]} if "device" in raw else {})}.items():
                cmd += ["--" + key.replace("_", "-"), str(value)]
            cmd += ["--out", str(run_dir), "--overwrite", "--quiet"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            command_seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(f"benchmark {name} seed {seed} failed: {' '.join(cmd)}")
            summary = json.loads((run_dir / "summary.json").read_text())
            rows.append({"benchmark": name, "seed": seed, "command_seconds": command_seconds, **summary})
            _print_bench_row(rows[-1], header=len(rows) == 1)
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\nresults: {out}/bench.json")
    return 0


def _print_bench_row(row: dict, header: bool) -> None:
    if "evaluation" in row:
        print(f"{row['benchmark']} seed {row['seed']}: {row['total_steps']:,} moves, {row['train_seconds']:.1f} s "
              f"training, {row['command_seconds']:.1f} s command, {row['device']}")
        print("\n".join(_game_results(row["evaluation"])), flush=True)
        return
    cols = [("benchmark", 10), ("seed", 4), ("eval return", 11), ("s to target", 11), ("steps to target", 15),
            ("steps/s", 9), ("learn st/s", 10), ("command s", 9), ("acting s", 8), ("learning s", 10), ("device", 6)]
    if header:
        print("  ".join(name.rjust(width) for name, width in cols))
    tt = row.get("time_to_target")
    st = row.get("steps_to_target")
    values = [row["benchmark"], row["seed"], f"{row['eval_return']:.1f}", f"{tt:.1f}" if tt is not None else "-",
              f"{st:,}" if st is not None else "-", f"{row['steps_per_second']:,.0f}",
              f"{row['learning_steps_per_second']:,.0f}" if row.get("learning_steps_per_second") else "-",
              f"{row['command_seconds']:.1f}",
              f"{row['time_acting']:.1f}", f"{row['time_learning']:.1f}", row["device"]]
    print("  ".join(str(v).rjust(width) for v, (_, width) in zip(values, cols)), flush=True)


def _search_speed(argv: list[str]) -> int:
    from .search.benchmark import main as search_speed
    return search_speed(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": _train, "bench": _bench, "search-speed": _search_speed}
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.format(algos=", ".join(ALGORITHMS)))
        return 0 if argv else 2
    command = argv[0]
    try:
        if command not in commands:
            raise UsageError(f"unknown command {command!r}; accepted: {', '.join(commands)}")
        return commands[command](argv[1:])
    except UsageError as exc:
        _fail(str(exc))
