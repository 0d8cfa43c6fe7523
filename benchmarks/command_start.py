"""How long fgaug's commands take to start: the wall time of short commands, whose time is mostly
the imports before any work, today's tree against a git revision of this repository.

Each command runs as a user runs it, ``python -m fgaug ...`` in a fresh process, from the root of
this repository and from a checkout of ``--baseline`` (a detached ``git worktree``, removed at the
end), interleaved round by round (A, B, B, A, ...) so that both see the same machine. Prints the
median wall seconds of each and the baseline's time over today's per round, median and quartiles,
and the modules today's ``fgaug.api`` loads from scipy and matplotlib (none, since they became
imports on first use).

    python benchmarks/command_start.py --baseline 0032c72
    python benchmarks/command_start.py --baseline HEAD~5 --rounds 12 --command "info demo" --command "env"
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quartiles import quartiles

REPOSITORY = Path(__file__).resolve().parent.parent
COMMANDS = ("--help", "info demo", "env")
"""Commands that do little beyond starting: help (no torch), a checkpoint's details, the machine."""


def wall_seconds(tree: Path, command: str) -> float:
    """Seconds of one ``python -m fgaug COMMAND`` run from ``tree`` (its ``fgaug`` is the one imported)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fgaug", *shlex.split(command)], cwd=tree, capture_output=True, check=True)
    return time.perf_counter() - started


def heavy_modules(tree: Path) -> list[str]:
    """The scipy.stats and matplotlib modules that importing ``fgaug.api`` from ``tree`` loads."""
    probe = (
        "import json, sys, fgaug.api; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('scipy.stats', 'matplotlib')))))"
    )
    printed = subprocess.run([sys.executable, "-c", probe], cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(printed.stdout)


def compare(trees: dict[str, Path], commands: list[str], rounds: int) -> list[dict[str, object]]:
    """Per command: the median seconds of each tree and the baseline-over-today ratios per round."""
    names = list(trees)
    rows = []
    for command in commands:
        for name in names:  # a first run of each: the page cache and Python's bytecode cache warm
            wall_seconds(trees[name], command)
        seconds: dict[str, list[float]] = {name: [] for name in names}
        for round_index in range(rounds):
            for name in names if round_index % 2 == 0 else reversed(names):
                seconds[name].append(wall_seconds(trees[name], command))
        row: dict[str, object] = {"command": command}
        row.update({f"{name}_s": round(statistics.median(seconds[name]), 3) for name in names})
        if len(names) == 2:
            ratios = [base / today for today, base in zip(seconds[names[0]], seconds[names[1]], strict=True)]
            row["speed_up"] = [round(value, 3) for value in quartiles(ratios)]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="a git revision of this repository to compare with (default: none)")
    parser.add_argument("--command", action="append", help=f"a command to time, repeatable (default: {COMMANDS})")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    commands = args.command or list(COMMANDS)
    with tempfile.TemporaryDirectory(prefix="fgaug-command-start-") as folder:
        trees = {"today": REPOSITORY}
        if args.baseline:
            checkout = Path(folder) / "baseline"
            subprocess.run(
                ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", "-q", str(checkout), args.baseline],
                check=True,
            )
            trees[args.baseline] = checkout
        try:
            rows = compare(trees, commands, args.rounds)
            loaded = {name: heavy_modules(tree) for name, tree in trees.items()}
        finally:
            if args.baseline:
                remove = ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force", str(checkout)]
                subprocess.run(remove, check=True)
    if args.json:
        print(json.dumps({"rounds": args.rounds, "rows": rows, "scipy_stats_and_matplotlib_loaded": loaded}))
        return
    columns = list(rows[0])
    print(f"wall seconds per command, median of {args.rounds} interleaved rounds; speed_up: baseline / today per round")
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
    for name, modules in loaded.items():
        print(f"{name}: fgaug.api loads {len(modules)} scipy.stats and matplotlib modules")


if __name__ == "__main__":
    main()
