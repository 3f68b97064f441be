"""Command line: ``python -m course_lib COMMAND [options]``.

    python -m course_lib train ppo --env CartPole-v1 --total-steps 100000 --seed 0 \\
        --device auto --out runs/ppo [--preset speed] [--resume] [--threads N]
    python -m course_lib bench ppo [--seeds 0,1,2] [--benchmarks default,speed]
    python -m course_lib search-speed --game connect4 --batches 1,64,256
    python -m course_lib transformer-speed [--d-model 128] [--layers 4] [--context 256]
    python -m course_lib gpu-check [--device cuda] [--out gpu-check.json]

Every field of the algorithm's config is an option (``--gae-lambda 0.9``); options
override the preset's values. ``COMMAND --help`` lists a command's options. Mistakes
print one line naming what is accepted and exit with status 2.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NoReturn

from .agents import ALGORITHMS, Algorithm

HELP = """usage: python -m course_lib COMMAND [options]

commands:
  train ALGO      train one agent; every field of its config is an option
  bench ALGO      run the agent's benchmark presets over seeds, print a table and write bench.json
  search-speed    simulations per second of the batched MCTS, per evaluator and batch size
  transformer-speed  training and sampling tokens/s of the course transformer, against torch's own
  gpu-check       every agent trains briefly on a device, and the speeds book/results.md quotes

algorithms: {algos}

python -m course_lib COMMAND --help     the options of a command (train ALGO --help: of ALGO)"""

TRAIN_HELP = """usage: python -m course_lib train ALGO [--OPTION VALUE ...] [--preset NAME] [--out DIR] [--resume]
                                 [--overwrite] [--quiet] [--threads N]

algorithms: {algos}

python -m course_lib train ALGO --help   every option of ALGO, with its default and accepted values"""

# Options of `train` that are not config fields.
RUN_FLAGS = ("preset", "out", "resume", "overwrite", "quiet", "threads")
RUN_FLAG_HELP = (
    ("--preset NAME", "named configuration: {presets}"),
    ("--out DIR", "run directory (default runs/ALGO-ENV-seedN)"),
    ("--resume", "continue the run in --out from its checkpoint"),
    ("--overwrite", "replace a run already in --out"),
    ("--quiet", "no progress bar"),
    ("--threads N", "CPU threads of torch (default 1, or OMP_NUM_THREADS: more only pay for big models on an "
                    "idle CPU)"),
)

# How each agent's loop spends --total-steps: in whole chunks of `field` steps (at least one),
# so a total that is not a multiple is rounded down. Keyed by algorithm; AlphaGo has no step budget.
STEP_CHUNKS: dict[str, tuple[str, str, str, str]] = {
    # algorithm: (config field holding the chunk's size, one chunk, several, what the size is made of)
    "ppo": ("batch_size", "rollout", "rollouts", "num_envs × num_steps"),
    "impala": ("batch_frames", "learner batch", "learner batches", "batch_unrolls × unroll_length × envs_per_actor"),
    "sac": ("num_envs", "iteration", "iterations", "num_envs"),
    "alphazero": ("num_envs", "iteration", "iterations", "num_envs"),
    "muzero": ("num_envs", "iteration", "iterations", "num_envs"),
}


class UsageError(Exception):
    """A command-line mistake; printed as one line, exit status 2."""


def _fail(message: str) -> NoReturn:
    print(f"course_lib: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


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


def _integers(option: str, text: str, low: int = 1, single: bool = False) -> list[int]:
    """``"1,64,256"`` -> ``[1, 64, 256]``, each at least ``low`` (exactly one value if ``single``)."""
    accepted = f"one integer >= {low}" if single else f"comma-separated integers >= {low}"
    try:
        values = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or min(values) < low or (single and len(values) != 1):
        raise UsageError(f"--{option} {text!r} is not accepted; accepted: {accepted}")
    return values


def _integer(option: str, text: str, low: int = 1) -> int:
    return _integers(option, text, low, single=True)[0]


def _device(spec: str):
    """The ``torch.device`` for ``--device``; a missing GPU is a usage error, not a traceback."""
    from .core import resolve_device

    try:
        return resolve_device(spec)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _threads(device, raw: dict) -> int:
    """Apply ``--threads`` (or the choice of :func:`configure_threads`) for a run on ``device``."""
    from .core.device import configure_threads

    return configure_threads(device, _integer("threads", raw["threads"]) if "threads" in raw else None)


def _rounding_note(algo: str, config) -> str:
    """Says how --total-steps was rounded to whole chunks; empty when it was a multiple already."""
    if algo not in STEP_CHUNKS:
        return ""
    field, one, several, made_of = STEP_CHUNKS[algo]
    size = getattr(config, field)
    n = max(1, config.total_steps // size)
    if n * size == config.total_steps:
        return ""
    way = "down" if n * size < config.total_steps else "up"
    return (f" (--total-steps {config.total_steps:,} rounded {way} to {n:,} whole {one if n == 1 else several} "
            f"of {size:,} = {made_of})")


# ----------------------------------------------------------------------------------- train
def _print_help(algo: Algorithm) -> None:
    cls = algo.config_class
    print(f"usage: python -m course_lib train {algo.name} [options]\n")
    print("run options:")
    for flag, text in RUN_FLAG_HELP:
        print(f"  {flag:<22} {text.format(presets=', '.join(cls.presets) or '(none)')}")
    chunk = STEP_CHUNKS.get(algo.name)
    print(f"\n{cls.__name__} options:")
    for flag, text in cls.help_lines():
        if flag == "--total-steps" and chunk is not None:
            _, one, several, made_of = chunk
            text += (f"; the run takes whole {several} of {made_of} steps, so it is rounded down to a multiple "
                     f"of that (at least one {one})")
        print(f"  {flag:<22} {text}")


def _train(argv: list[str]) -> int:
    from .core import ConfigError, RunExists, stored_config
    from .envs import UnknownEnvironment

    if argv and argv[0] in ("-h", "--help"):
        print(TRAIN_HELP.format(algos=", ".join(ALGORITHMS)))
        return 0
    algo = _algorithm(argv[0] if argv else None)
    cls = algo.config_class
    if _wants_help(argv[1:]):
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
    device = _device(config.device)          # no GPU where one is asked for: one line, before any work
    threads = _threads(device, run_opts)
    # Agents name their environment, supervised models their data set.
    subject = getattr(config, "env", None) or getattr(config, "dataset", None)
    out = run_opts.get("out") or f"runs/{algo.name}-{subject}-seed{config.seed}"
    try:
        summary = algo.load().train(config, out, resume=resume, overwrite=run_opts.get("overwrite", False),
                                    progress=not run_opts.get("quiet", False))
    except (ConfigError, RunExists) as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt as exc:
        print(f"\n{exc or 'interrupted'}", file=sys.stderr)
        return 130
    _report(summary, out, _rounding_note(algo.name, config), threads if device.type == "cpu" else None)
    return 0


def _number(value: Any, spec: str, missing: str = "n/a") -> str:
    """``format(value, spec)``, or ``missing`` for None and NaN (e.g. no episode finished yet)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


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


def _report(summary: dict, out: str, rounding: str = "", threads: int | None = None) -> None:
    """The summary line (and board-game results) the command prints after a run."""
    sps = summary.get("steps_per_second")
    where = f" on {summary.get('device')}" + (f" ({threads} thread{'s' if threads != 1 else ''})" if threads else "")
    if summary["algo"] == "alphago":  # a pipeline of stages, each played against the reference players
        from .agents.alphago import format_results

        print(f"alphago {summary['env']} seed {summary['seed']}{where}:\n{format_results(summary)}")
        print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")
        return
    if summary.get("evaluation"):  # board games: results against the reference players
        print(f"{summary['algo']} {summary['env']} seed {summary['seed']}: {summary['total_steps']:,} self-play moves"
              f"{rounding} ({summary.get('games', 0):,} games) in {_number(summary.get('train_seconds'), '.1f')} s "
              f"of training" + (f" ({sps:,.0f} moves/s)" if sps else "") + where)
        print("\n".join(_game_results(summary["evaluation"])))
        print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")
        return
    if "greedy_accuracy" in summary:  # the reasoner: greedy decoding on held-out problems
        print(f"reasoner seed {summary['seed']}: greedy accuracy {summary['greedy_accuracy']:.2%} on "
              f"{summary['eval_problems']:,} held-out problems · {summary['updates']:,} steps in "
              f"{summary['train_seconds']:.1f} s of training{where}")
        print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")
        return
    if "test_accuracy" in summary:  # a classifier: scored on its data set's test split
        print(f"{summary['algo']} ({summary['model']}) {summary['dataset']} seed {summary['seed']}: test accuracy "
              f"{summary['test_accuracy']:.2%} on {summary['test_images']:,} images · "
              f"{summary['epochs']} epoch{'s' if summary['epochs'] != 1 else ''} in "
              f"{summary['train_seconds']:.1f} s of training{where}")
        print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")
        return
    target = ""
    if summary.get("time_to_target") is not None:
        target = (f" · reached {summary['target_return']:g} after {summary['steps_to_target']:,} steps, "
                  f"{summary['time_to_target']:.1f} s")
    train_return = _number(summary.get("train_return"), ".1f", "n/a (no training episode finished)")
    episodes = len(summary.get("eval_returns") or [])
    print(f"{summary['algo']} {summary['env']} seed {summary['seed']}: "
          f"eval_return {_number(summary.get('eval_return'), '.1f')} "
          f"(greedy, {episodes} episode{'s' if episodes != 1 else ''}) · train_return {train_return} · "
          f"{summary['total_steps']:,} steps{rounding} in {_number(summary.get('wall_seconds'), '.1f')} s"
          + (f" ({sps:,.0f} steps/s)" if sps else "") + f"{where}{target}")
    print(f"files: {out}/summary.json, metrics.jsonl, checkpoint.pt")


# ----------------------------------------------------------------------------------- bench
BENCH_OPTIONS = ("seeds", "benchmarks", "out", "device", "threads")


def _print_bench_help(algo: Algorithm | None) -> None:
    name = algo.name if algo else "ALGO"
    print(f"usage: python -m course_lib bench {name} [--seeds 0,1,2] [--benchmarks NAME,...] [--out DIR] "
          "[--device DEVICE] [--threads N]\n")
    print("Runs `train` once per benchmark and seed (each in its own process), prints one row per run and")
    print("writes every summary to OUT/bench.json.\n")
    print("  --seeds LIST          comma-separated seeds (default 0,1,2)")
    print("  --benchmarks LIST     comma-separated benchmark names (default: all)")
    print("  --out DIR             where the runs and bench.json go (default: a new temporary directory)")
    print("  --device DEVICE       passed to every run: auto, cpu, cuda, cuda:N or mps")
    print("  --threads N           passed to every run: CPU threads of torch (default 1, or OMP_NUM_THREADS)")
    if algo is None:
        print(f"\nalgorithms: {', '.join(ALGORITHMS)}")
        return
    print(f"\nbenchmarks of {algo.name}:")
    for bench, (preset, extra) in algo.load().BENCHMARKS.items():
        options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in extra.items())
        print(f"  {bench:<12} " + " ".join(p for p in (f"--preset {preset}" if preset else "(defaults)", options) if p))


def _bench(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        _print_bench_help(None)
        return 0
    algo = _algorithm(argv[0] if argv else None)
    if _wants_help(argv[1:]):
        _print_bench_help(algo)
        return 0
    benchmarks = algo.load().BENCHMARKS
    raw = _split_options(argv[1:], list(BENCH_OPTIONS), (), f"bench {algo.name}")
    seeds = _integers("seeds", raw.get("seeds", "0,1,2"), low=0)
    names = [n.strip() for n in str(raw.get("benchmarks", ",".join(benchmarks))).split(",") if n.strip()]
    for name in names:
        if name not in benchmarks:
            raise UsageError(f"unknown benchmark {name!r} for {algo.name}; accepted: {', '.join(benchmarks)}")
    if "device" in raw:
        _device(str(raw["device"]))         # fail here, not in each run
    if "threads" in raw:
        _integer("threads", raw["threads"])
    out = Path(raw["out"]) if "out" in raw else Path(tempfile.mkdtemp(prefix=f"bench-{algo.name}-"))
    rows = []
    for name in names:
        preset, extra = benchmarks[name]
        for seed in seeds:
            run_dir = out / f"{name}-seed{seed}"
            cmd = [sys.executable, "-m", "course_lib", "train", algo.name]
            if preset:
                cmd += ["--preset", preset]
            passed = {k: raw[k] for k in ("device", "threads") if k in raw}
            for key, value in {**extra, "seed": seed, **passed}.items():
                cmd += ["--" + key.replace("_", "-"), str(value)]
            cmd += ["--out", str(run_dir), "--overwrite", "--quiet"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            command_seconds = time.perf_counter() - t0
            if proc.returncode == 2:           # the run refused its options: pass its one line on
                said = proc.stderr.strip().splitlines() or [f"benchmark {name} refused its options"]
                raise UsageError(said[-1].removeprefix("course_lib: error: "))
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                raise SystemExit(f"benchmark {name} seed {seed} failed: {' '.join(cmd)}")
            summary = json.loads((run_dir / "summary.json").read_text())
            rows.append({"benchmark": name, "seed": seed, "command_seconds": command_seconds, **summary})
            _print_bench_row(rows[-1], header=len(rows) == 1)
    (out / "bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    _print_bench_means(rows)
    print(f"\nresults: {out}/bench.json")
    return 0


def _print_bench_row(row: dict, header: bool) -> None:
    if "test_accuracy" in row:  # classifiers: accuracy on the test split and training time
        cols = [("benchmark", 10), ("seed", 4), ("model", 5), ("test acc", 8), ("train s", 7), ("command s", 9),
                ("params", 8), ("device", 6)]
        if header:
            print("  ".join(name.rjust(width) for name, width in cols))
        values = [row["benchmark"], row["seed"], row["model"], f"{row['test_accuracy']:.2%}",
                  _seconds(row["train_seconds"]), f"{row['command_seconds']:.1f}", f"{row['parameters']:,}",
                  row["device"]]
        print("  ".join(str(v).rjust(width) for v, (_, width) in zip(values, cols)), flush=True)
        return
    if row.get("evaluation"):
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
    values = [row["benchmark"], row["seed"], _number(row.get("eval_return"), ".1f"),
              f"{tt:.1f}" if tt is not None else "-",
              f"{st:,}" if st is not None else "-", _number(row.get("steps_per_second"), ",.0f"),
              f"{row['learning_steps_per_second']:,.0f}" if row.get("learning_steps_per_second") else "-",
              f"{row['command_seconds']:.1f}",
              f"{row['time_acting']:.1f}", f"{row['time_learning']:.1f}", row["device"]]
    print("  ".join(str(v).rjust(width) for v, (_, width) in zip(values, cols)), flush=True)


def _print_bench_means(rows: list[dict]) -> None:
    """For classifiers: each benchmark's mean, lowest and highest test accuracy and training time over its seeds."""
    names = list(dict.fromkeys(r["benchmark"] for r in rows if "test_accuracy" in r))
    if names:
        print()
    for name in names:
        acc = [r["test_accuracy"] for r in rows if r["benchmark"] == name]
        secs = [r["train_seconds"] for r in rows if r["benchmark"] == name]
        print(f"{name}: test accuracy mean {sum(acc) / len(acc):.2%} (min {min(acc):.2%}, max {max(acc):.2%}) over "
              f"{len(acc)} seed{'s' if len(acc) != 1 else ''}; training {_seconds(sum(secs) / len(secs))} s mean, "
              f"{_seconds(max(secs))} s max")


def _seconds(value: float) -> str:
    """Seconds with one decimal, two below a second (an SVC fits in hundredths)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


# ---------------------------------------------------------------------------- search-speed
# The options both speed commands share.
SPEED_COMMON_HELP = """
  --device DEVICE      auto, cpu, cuda, cuda:N or mps (default auto)
  --repeats N          timed runs per measurement, the best is kept (default 3)
  --out FILE           also write the results as JSON
  --threads N          CPU threads of torch (default 1, or OMP_NUM_THREADS)"""
SEARCH_SPEED_DEFAULTS = {"game": "connect4", "simulations": "200", "batches": "1,64,256",
                         "evaluators": "trivial,mlp", "device": "auto", "repeats": "3", "out": "", "threads": ""}

SEARCH_SPEED_HELP = """usage: python -m course_lib search-speed [options]

Times one batched search from the start of the game with B trees at once, for each evaluator
and batch size B; prints sims/s (B × simulations / seconds, best of the repeats after a warm-up)
and the share of the time spent inside the evaluator.

  --game NAME          {games} (default connect4)
  --simulations N      simulations per search (default 200)
  --batches LIST       comma-separated batch sizes B (default 1,64,256)
  --evaluators LIST    comma-separated, of {evaluators} (default trivial,mlp)""" + SPEED_COMMON_HELP


def _search_speed(argv: list[str]) -> int:
    from .games import GAMES
    from .search.benchmark import EVALUATORS, measure

    if _wants_help(argv):
        print(SEARCH_SPEED_HELP.format(games=", ".join(GAMES), evaluators=", ".join(EVALUATORS)))
        return 0
    opts = {**SEARCH_SPEED_DEFAULTS, **_split_options(argv, list(SEARCH_SPEED_DEFAULTS), (), "search-speed")}
    if opts["game"] not in GAMES:
        raise UsageError(f"unknown game {opts['game']!r} for search-speed; accepted: {', '.join(GAMES)}")
    evaluators = [e.strip() for e in str(opts["evaluators"]).split(",") if e.strip()]
    bad = [e for e in evaluators if e not in EVALUATORS] or ([] if evaluators else [opts["evaluators"]])
    if bad:
        raise UsageError(f"unknown evaluator {bad[0]!r}; accepted: {', '.join(EVALUATORS)}")
    simulations = _integer("simulations", opts["simulations"])
    batches = _integers("batches", opts["batches"])
    repeats = _integer("repeats", opts["repeats"])
    device = _device(str(opts["device"]))
    _threads(device, {"threads": opts["threads"]} if opts["threads"] else {})
    rows = []
    print(f"{'evaluator':>9} {'batch':>5} {'sims':>5} {'seconds':>8} {'sims/s':>10} {'in evaluator':>12}  device")
    for evaluator in evaluators:
        for batch in batches:
            row = measure(opts["game"], simulations, batch, evaluator, device, repeats)
            rows.append(row)
            print(f"{evaluator:>9} {batch:>5} {row['simulations']:>5} {row['seconds']:>8.3f} "
                  f"{row['sims_per_second']:>10,.0f} {row['evaluator_share']:>11.0%}  {row['device']}", flush=True)
    if opts["out"]:
        Path(opts["out"]).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


# ----------------------------------------------------------------------- transformer-speed
TRANSFORMER_SPEED_DEFAULTS = {"device": "auto", "d_model": "128", "layers": "4", "heads": "4", "batch": "16",
                              "seq": "128", "context": "256", "new_tokens": "32", "sample_batch": "1",
                              "repeats": "3", "out": "", "threads": ""}

TRANSFORMER_SPEED_HELP = """usage: python -m course_lib transformer-speed [options]

Training tokens/s of the course transformer against torch.nn.TransformerEncoder of the same size
under the same causal mask, and GPT sampling tokens/s with the key/value cache against
recomputing the whole context every step (best of the repeats after a warm-up).

  --d-model N, --layers N, --heads N    the model's size (default 128, 4, 4)
  --batch N, --seq N                    training batch: N sequences of seq tokens (default 16, 128)
  --context N, --new-tokens N           sampling: prompt length and tokens sampled (default 256, 32)
  --sample-batch N                      sequences sampled at once (default 1)""" + SPEED_COMMON_HELP


def _transformer_speed(argv: list[str]) -> int:
    from .nets.benchmark import measure

    if _wants_help(argv):
        print(TRANSFORMER_SPEED_HELP)
        return 0
    opts = {**TRANSFORMER_SPEED_DEFAULTS,
            **_split_options(argv, list(TRANSFORMER_SPEED_DEFAULTS), (), "transformer-speed")}
    sizes = {name: _integer(name, opts[name]) for name in ("d_model", "layers", "heads", "batch", "seq", "context",
                                                           "new_tokens", "sample_batch", "repeats")}
    if sizes["d_model"] % sizes["heads"]:
        raise UsageError(f"--d-model {sizes['d_model']} must divide by --heads {sizes['heads']}")
    device = _device(str(opts["device"]))
    _threads(device, {"threads": opts["threads"]} if opts["threads"] else {})
    row = measure(device, **sizes)
    print(f"model: d_model {row['d_model']}, {row['layers']} layers, {row['heads']} heads, "
          f"{row['train_parameters']:,} parameters; device {row['device']}, {row['threads']} thread(s)")
    print(f"training, causal, {row['batch']} x {row['seq']} tokens:")
    print(f"  course transformer        {row['train_ours_tokens_per_second']:>10,.0f} tokens/s")
    print(f"  nn.TransformerEncoder     {row['train_torch_tokens_per_second']:>10,.0f} tokens/s")
    print(f"  ratio                     {row['train_ratio']:>10.2f}x")
    print(f"sampling {row['new_tokens']} tokens after {row['context']} of context, batch {row['sample_batch']}:")
    print(f"  key/value cache           {row['sample_cached_tokens_per_second']:>10,.0f} tokens/s")
    print(f"  recompute the context     {row['sample_recomputed_tokens_per_second']:>10,.0f} tokens/s")
    print(f"  ratio                     {row['sample_ratio']:>10.2f}x   (same tokens: {row['sample_same_tokens']})")
    if opts["out"]:
        Path(opts["out"]).write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return 0


# ------------------------------------------------------------------------------- gpu-check
def _gpu_check(argv: list[str]) -> int:
    from . import gpu_check

    if _wants_help(argv):
        print(gpu_check.HELP.format(checks=", ".join(gpu_check.CHECKS), profiles=", ".join(gpu_check.PROFILES)))
        return 0
    raw = _split_options(argv, ["device", "profile", "only", "out", "threads"], (), "gpu-check")
    device = _device(str(raw.get("device", "cuda")))
    profile = str(raw.get("profile", "tiny" if device.type == "cpu" else "full"))
    if profile not in gpu_check.PROFILES:
        raise UsageError(f"unknown profile {profile!r} for gpu-check; accepted: {', '.join(gpu_check.PROFILES)}")
    only = [n.strip() for n in str(raw.get("only", ",".join(gpu_check.CHECKS))).split(",") if n.strip()]
    for name in only:
        if name not in gpu_check.CHECKS:
            raise UsageError(f"unknown check {name!r} for gpu-check; accepted: {', '.join(gpu_check.CHECKS)}")
    threads = _threads(device, raw)
    out = Path(raw.get("out", f"runs/gpu-check-{device.type}.json"))
    report = gpu_check.run_checks(device, profile, only, out, threads=threads)
    return 0 if report["ok"] else 1


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": _train, "bench": _bench, "search-speed": _search_speed,
    "transformer-speed": _transformer_speed, "gpu-check": _gpu_check,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP.format(algos=", ".join(ALGORITHMS)))
        return 0
    command = argv[0]
    try:
        if command not in COMMANDS:
            raise UsageError(f"unknown command {command!r}; accepted: {', '.join(COMMANDS)}")
        return COMMANDS[command](argv[1:])
    except UsageError as exc:
        _fail(str(exc))
