"""Start-up time of `phi3v-train --help` and `phi3v-train run --help` (issue 9: under 1 s each).

Each command runs --repeat times (default 5) in a fresh interpreter, as the console script would
(``from phi3v_train.cli.main import main; main()``), and the median wall time is reported. --root
points the child interpreter at another source tree (through PYTHONPATH), which measures an older
commit checked out with ``git worktree add`` against the same virtual environment.

Prints one JSON line per command: machine, settings, the median wall time and every run, and the
median CPU time (user + system) of the child, which a busy shared machine inflates much less.

  python benchmarks/bench_cli_startup.py
  python benchmarks/bench_cli_startup.py --root /tmp/before --label before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import cpu_model

COMMANDS = {"phi3v-train --help": ["--help"], "phi3v-train run --help": ["run", "--help"]}
CHILD = "import sys; sys.argv = ['phi3v-train', *sys.argv[1:]]; from phi3v_train.cli.main import main; main()"


def git_commit(root: Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of the CLI with ``args``."""
    cpu_before = child_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return elapsed, child_cpu_seconds() - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="Source tree to run.")
    parser.add_argument("--repeat", type=int, default=5, help="Runs per command; the median is reported.")
    parser.add_argument("--label", default="after", help="Name of this measurement in the output (before/after).")
    options = parser.parse_args()
    root = options.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "120"}
    for name, args in COMMANDS.items():
        time_once(args, env, root)  # warms the file cache (and __pycache__) so every counted run is alike
        runs = [time_once(args, env, root) for _ in range(options.repeat)]
        walls = [wall for wall, _ in runs]
        print(
            json.dumps(
                {
                    "bench": "cli_startup",
                    "label": options.label,
                    "command": name,
                    "commit": git_commit(root),
                    "median_s": round(statistics.median(walls), 3),
                    "runs_s": [round(wall, 3) for wall in walls],
                    "median_cpu_s": round(statistics.median(cpu for _, cpu in runs), 3),
                    "cpu": cpu_model(),
                    "cores": os.cpu_count(),
                    "load_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(),
                }
            )
        )


if __name__ == "__main__":
    main()
