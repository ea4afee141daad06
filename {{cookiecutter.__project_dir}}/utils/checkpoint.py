"""Checkpoint files that are either complete or absent.

A checkpoint is a dict of tensors and plain values (numbers, strings, lists, dicts), so it
loads with `torch.load(path, weights_only=True)`: no pickled objects, no code run on load.
"""

import io
import logging
import math
import os
import re
import uuid
from pathlib import Path

import torch

from utils.errors import CheckpointError, first_line

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
# checkpoint-epoch5.pth: after epoch 5; checkpoint-epoch6-step140.pth: in epoch 6, after optimizer
# step 140 of the run. Steps only grow, whatever the number of processes, so names sort by progress.
NAME = re.compile(r"^checkpoint-epoch(\d+)(?:-step(\d+))?\.pth$")


def checkpoint_name(epoch: int, step: int | None = None) -> str:
    """The file name for a checkpoint at the end of `epoch`, or at global `step` within it."""
    return f"checkpoint-epoch{epoch}.pth" if step is None else f"checkpoint-epoch{epoch}-step{step}.pth"


def save_checkpoint(state: dict | bytes, path: Path) -> None:
    """Write `state` (or its bytes from `serialize`) to `path` atomically: a crash at any moment
    leaves the old file intact.

    The temporary file lives in the target folder, because a rename across filesystems is not
    atomic (and fails); fsync makes the data durable before the rename makes it visible.
    """
    path = Path(path)
    data = state if isinstance(state, bytes) else serialize(state)
    tmp_name = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}.pth"
    try:
        with open(tmp_name, "xb") as file:  # unlike mkstemp's 0600, permissions follow the umask
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # persist the rename itself; Windows cannot open folders for fsync
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def serialize(state: dict) -> bytes:
    """The bytes of a checkpoint file holding `state`."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def sweep_temp_files(folder: Path) -> list[Path]:
    """Delete temporary files left by a process killed while saving; return what was removed."""
    removed = sorted(Path(folder).glob(f"{TEMP_PREFIX}*.pth"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely, turning every failure into a one-line `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; check the path given to --resume")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = first_line(exc)
        raise CheckpointError(
            f"checkpoint '{path}' cannot be loaded ({reason}); it is corrupt or not a checkpoint"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "config" not in checkpoint:
        raise CheckpointError(f"'{path}' is not a checkpoint written by this project's train.py")
    return checkpoint


def load_model_state(model: torch.nn.Module, state_dict: dict, arch_key: str = "arch") -> None:
    """Load weights into `model`, explaining a mismatch in one line instead of a long report."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    resized = [key for key in expected if key in state_dict and state_dict[key].shape != expected[key].shape]
    if missing or unexpected or resized:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        if resized:
            key = resized[0]
            details.append(f"{key} is {tuple(state_dict[key].shape)}, the model has {tuple(expected[key].shape)}")
        raise CheckpointError(
            f"the checkpoint's weights do not fit the model built from config key '{arch_key}': "
            + "; ".join(details)
            + f" - use the '{arch_key}' settings the checkpoint was trained with"
        )
    model.load_state_dict(state_dict)


def run_checkpoints(folder: Path) -> list[Path]:
    """The numbered checkpoints in a run folder, from least to most trained."""

    def progress(match):  # a finished epoch ranks after every partial state of it
        return int(match.group(1)), math.inf if match.group(2) is None else int(match.group(2))

    found = [(progress(m), p) for p in Path(folder).glob("checkpoint-*.pth") if (m := NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Keep the `keep` most trained checkpoints; call only after the newest one is saved."""
    for path in run_checkpoints(folder)[:-keep]:
        path.unlink(missing_ok=True)


def find_latest(runs: Path) -> tuple[Path, dict]:
    """The most trained loadable checkpoint of the newest run under `runs` (save_dir/name)."""
    candidates = [p for run in Path(runs).glob("*") if run.is_dir() for p in run_checkpoints(run)[::-1]]
    if not candidates:
        raise CheckpointError(f"--resume auto: no checkpoint under '{runs}'; start a run with -c first")
    # Newest run first (by the time of its last checkpoint), most trained checkpoint first.
    newest_run = max(candidates, key=lambda p: p.stat().st_mtime).parent
    problems = []
    for path in [p for p in candidates if p.parent == newest_run]:
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            logger.warning("Skipping %s: %s", path.name, exc)
            problems.append(str(exc))
    raise CheckpointError(f"--resume auto: no loadable checkpoint in '{newest_run}': {problems[0]}")
