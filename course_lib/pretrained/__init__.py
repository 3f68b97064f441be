"""Small trained networks shipped with the package, so a notebook can show a trained agent at once.

Each file holds a run's config and network weights only (``export_network`` of its agent;
``load_network`` of the same module reads it back), and was made by the command listed in
:data:`COMMANDS`; rerun it to reproduce the file.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

COMMANDS = {
    "alphazero-tictactoe": "python -m course_lib train alphazero --env tictactoe --seed 0 --out runs/az-ttt && "
                           "python -c \"from course_lib.agents.alphazero import export_network; "
                           "export_network('runs/az-ttt', 'course_lib/pretrained/alphazero-tictactoe.pt')\"",
    "alphazero-connect4": "python -m course_lib train alphazero --preset connect4 --seed 0 --out runs/az-c4 && "
                          "python -c \"from course_lib.agents.alphazero import export_network; "
                          "export_network('runs/az-c4', 'course_lib/pretrained/alphazero-connect4.pt')\"",
    # Stops at its first evaluation of 475 or more (10,000 steps, about 2 minutes of training
    # on one thread); its greedy search then averaged 495.9 over 20 fresh episodes.
    "muzero-cartpole": "OMP_NUM_THREADS=1 python -m course_lib train muzero --env CartPole-v1 --seed 1 "
                       "--out runs/mz-cartpole && "
                       "python -c \"from course_lib.agents.muzero import export_network; "
                       "export_network('runs/mz-cartpole', 'course_lib/pretrained/muzero-cartpole.pt')\"",
}


def pretrained_path(name: str) -> Path:
    """The file of the pretrained network ``name`` (one of :data:`COMMANDS`)."""
    if name not in COMMANDS:
        raise ValueError(f"no pretrained network {name!r}; accepted: {', '.join(COMMANDS)}")
    path = HERE / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; make it with: {COMMANDS[name]}")
    return path
