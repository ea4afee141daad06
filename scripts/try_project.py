"""A contributor's inner loop: bake one project from this working tree, lint it, run its tests.

    python scripts/try_project.py                             # the default answers
    python scripts/try_project.py dataset=mnist mlflow=yes    # any answers, as cookiecutter takes them
    python scripts/try_project.py sweeps=no -- -k checkpoint  # pytest arguments after --

The project goes to build/try/<answers>/my_project, replacing the one this script made there
before (and nothing else). Without the smoke run and with the project's fast tests, the loop
takes about a minute on 2 CPU cores; each step's time is printed. The exit code is the first
failing step's.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = ".made-by-try-project"


def step(name, command, cwd):
    started = time.monotonic()
    code = subprocess.call(command, cwd=cwd)
    print(f"--- {name}: {'ok' if code == 0 else f'exit {code}'} in {time.monotonic() - started:.1f} s", flush=True)
    return code


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("answers", nargs="*", help="key=value answers, e.g. dataset=mnist tensorboard=no")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "try", help="folder for the bakes")
    args, pytest_args = parser.parse_known_args()
    pytest_args = [arg for arg in pytest_args if arg != "--"]
    bad = [answer for answer in args.answers if "=" not in answer]
    if bad:
        sys.exit(f"error: answers are key=value, got {bad[0]!r} (e.g. dataset=mnist)")

    folder = args.out / ("-".join(answer.replace("=", "_") for answer in sorted(args.answers)) or "default")
    if folder.exists():
        if not (folder / MARKER).is_file():
            sys.exit(f"error: {folder} exists and was not made by this script; pass another --out")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("build/try bake; replaced on the next run\n", encoding="utf-8")

    bake = [sys.executable, "-m", "cookiecutter", "--no-input", str(REPO), "-o", str(folder), *args.answers]
    # No smoke run: the project's own tests train it. One torch thread, as the template's tests run.
    os.environ["PYTORCH_TEMPLATE_SKIP_SMOKE"] = "1"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"--- baking into {folder}", flush=True)
    code = step("bake", bake, REPO)
    if code != 0:
        return code
    (project,) = [path for path in folder.iterdir() if path.is_dir()]
    for name, command in [
        ("ruff check", [sys.executable, "-m", "ruff", "check", "--no-cache", "."]),
        ("ruff format --check", [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."]),
        ("project tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]),
    ]:
        code = step(name, command, project)
        if code != 0:
            return code
    print(f"--- all passed; the project is in {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
