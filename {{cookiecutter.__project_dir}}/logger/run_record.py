"""What makes runs comparable without TensorBoard: each run folder records what it ran with
(`environment.json`) and draws its curves (`curves.png`). Both are trackers the trainer always
adds, so they run in the trackers' thread, off the training steps.
"""

import csv
import importlib.metadata
import io
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

from logger.trackers import Tracker
from utils.checkpoint import write_atomically
from utils.errors import PROJECT_DIR

ENVIRONMENT_FILE = "environment.json"
CURVES_FILE = "curves.png"


class EnvironmentRecord(Tracker):
    """`environment.json`: the git commit (and whether files had changed since), the versions of
    Python, torch and the project's requirements. One entry per start: a resumed run may have
    continued with other versions, and the entry says from which epoch."""

    writes = ENVIRONMENT_FILE

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        path = Path(run_dir) / ENVIRONMENT_FILE
        starts = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
        starts = [entry for entry in starts if entry.get("from_epoch", 0) < epoch]  # (as metrics.csv keeps rows)
        starts.append({"from_epoch": epoch, **environment(PROJECT_DIR)})
        write_atomically((json.dumps(starts, indent=2) + "\n").encode("utf-8"), path)


class Curves(Tracker):
    """`curves.png`: the loss and the monitored metric per epoch, training and validation, drawn
    from metrics.csv when the run ends or stops. Skipped when matplotlib is not installed."""

    writes = CURVES_FILE

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        self.run_dir = Path(run_dir)
        monitored = config["trainer"]["monitor"].partition(" ")[2].removeprefix("val_")
        self.names = ["loss"] + ([monitored] if monitored not in ("", "loss") else [])

    def close(self, status: str) -> None:
        try:  # the Agg canvas draws to a file with no window, no pyplot and no global state
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            return
        metrics = self.run_dir / "metrics.csv"
        if not metrics.exists():  # a run that failed before its first epoch ended
            return
        with open(metrics, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
        figure = Figure(figsize=(5 * len(self.names), 4), layout="constrained")
        FigureCanvasAgg(figure)
        for axes, name in zip(figure.subplots(1, len(self.names), squeeze=False)[0], self.names, strict=True):
            for column, label in ((name, "training"), (f"val_{name}", "validation")):
                points = [(int(row["epoch"]), float(row[column])) for row in rows if row.get(column)]
                if points:
                    axes.plot(*zip(*points, strict=True), marker="o", label=label)
            axes.set(title=name, xlabel="epoch")
            if axes.lines:
                axes.legend()
        image = io.BytesIO()
        figure.savefig(image, format="png")
        write_atomically(image.getvalue(), self.run_dir / CURVES_FILE)


def environment(project_dir: Path) -> dict:
    """The git commit of `project_dir` and the versions that a run there uses."""
    versions = {"python": platform.python_version()}
    for name in ["torch", *requirements(project_dir / "requirements.txt")]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"git": git_state(project_dir), "versions": versions, "platform": platform.platform(), "argv": sys.argv}


def requirements(path: Path) -> list[str]:
    """The distribution names a requirements file lists (`torch>=2.10` gives torch)."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    names = (re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line.strip()) for line in lines)
    return [name.group() for name in names if name]


def git_state(folder: Path) -> dict | None:
    """The commit checked out in `folder` and whether tracked files differ from it; None outside
    a git repository or without git."""
    commit, changes = _git(folder, "rev-parse", "HEAD"), _git(folder, "status", "--porcelain", "--untracked-files=no")
    return None if commit is None or changes is None else {"commit": commit.strip(), "dirty": bool(changes.strip())}


def git_commit() -> str | None:
    """The project's git commit, when it is a git repository with git installed."""
    state = git_state(PROJECT_DIR)
    return state and state["commit"]


def _git(folder: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None
