"""Checkpoint files and run folders: written atomically off the training thread, read back safely.

A checkpoint is a dict of tensors and plain values (numbers, strings, lists, dicts), so it loads
with `torch.load(path, weights_only=True)`: no pickled objects, no code run on load. A run's
files live in `save_dir/name/<timestamp>/`.
"""

import contextlib
import io
import itertools
import json
import logging
import math
import os
import re
import socket
import sys
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from utils import runtime
from utils.errors import CheckpointError, ConfigError, UserError, first_line

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
# checkpoint-epoch5.pth: after epoch 5; checkpoint-epoch6-step140.pth: in epoch 6, after optimizer
# step 140 of the run. Steps only grow, whatever the number of processes, so names sort by progress.
NAME = re.compile(r"^checkpoint-epoch(\d+)(?:-step(\d+))?\.pth$")
# What a value of the trainer's state must be, by the kind of the value a fresh trainer holds.
SAME_GROUPS = "resume with the optimizer.param_groups and arch.freeze it was trained with"
KINDS = {int: (int, "an integer"), float: ((int, float), "a number"), str: (str, "text"), dict: (dict, "a mapping")}


def checkpoint_name(epoch: int, step: int | None = None) -> str:
    """The file name for a checkpoint at the end of `epoch`, or at global `step` within it."""
    return f"checkpoint-epoch{epoch}.pth" if step is None else f"checkpoint-epoch{epoch}-step{step}.pth"


def save_checkpoint(state: dict | bytes, path: Path) -> None:
    """Write `state` (or its bytes) to `path` atomically: a crash at any moment leaves the old file."""
    write_atomically(state if isinstance(state, bytes) else serialize(state), path)


def write_atomically(data: bytes, path: Path) -> None:
    """Write `data` to `path` so that it is either complete or absent (the old file stays).

    The temporary file lives in the target folder, because a rename across filesystems is not
    atomic (and fails); fsync makes the data durable before the rename makes it visible.
    """
    path = Path(path)
    tmp_name = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}{path.suffix or '.tmp'}"
    try:
        with open(tmp_name, "xb") as file:  # unlike mkstemp's 0600, permissions follow the umask
            file.write(data)
            file.flush()
            _flush_to_disk(file.fileno())
        _replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # persist the rename itself; Windows cannot open folders for fsync
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _flush_to_disk(fd: int) -> None:
    if sys.platform == "darwin":  # macOS's fsync leaves the data in the drive's cache
        import fcntl  # (POSIX only)

        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
    else:
        os.fsync(fd)


def _replace(source: Path, target: Path, attempts: int = 20) -> None:
    """os.replace; on Windows it fails while another process has `target` open (an evaluation,
    a virus scanner), so it is retried there for up to two seconds."""
    for attempt in range(attempts):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if os.name != "nt" or attempt == attempts - 1:
                raise
            time.sleep(0.1)


def serialize(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def sweep_temp_files(folder: Path) -> list[Path]:
    """Delete temporary files left by a process killed while saving; return what was removed."""
    removed = sorted(Path(folder).glob(f"{TEMP_PREFIX}*"))  # (checkpoints, exports, a run's records)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def sweep_abandoned_runs(runs: Path, own: Path) -> None:
    """Delete the temporary files in the run folders under `runs` (save_dir/name) that no process
    holds: a run killed while writing its first checkpoint is never resumed, so never swept."""
    for folder in {path.parent for path in Path(runs).glob(f"*/{TEMP_PREFIX}*")} - {own}:
        with contextlib.suppress(Timeout, OSError), FileLock(folder / ".lock", timeout=0):
            for path in sweep_temp_files(folder):
                logger.warning("Removed %s, left by a run killed while saving", path)


def then_go_on(run_dir: Path | None) -> str:
    """How a message about a failed write ends: resuming only where there is a checkpoint to resume."""
    return "then resume with -r auto" if run_dir and run_checkpoints(run_dir) else "then start the run again"


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely and check that it holds a config and finite weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; check the path given to -r")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        # torch's wording of a refusal varies by version, and advises weights_only=False: never repeat it
        blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))  # e.g. pytorch-template's pickled ConfigParser
        if blocked:
            raise CheckpointError(
                f"checkpoint '{path}' holds pickled code ({blocked.group(1)}), which is never loaded (unpickling "
                "it could run anything); if it is your own pytorch-template checkpoint, convert it as README.md "
                "shows ('Coming from pytorch-template')"
            ) from None
        if "weights only load failed" in str(exc).lower():
            raise CheckpointError(
                f"checkpoint '{path}' cannot be loaded: it is corrupt, or holds pickled objects, which are never "
                "loaded (unpickling them could run anything)"
            ) from None
        raise CheckpointError(f"checkpoint '{path}' cannot be loaded ({first_line(exc)}); it is corrupt") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("config"), dict):
        raise CheckpointError(f"'{path}' is not a checkpoint written by this project's train.py (no config)")
    weights = checkpoint.get("state_dict")
    if not isinstance(weights, dict) or not all(isinstance(t, torch.Tensor) for t in weights.values()):
        raise CheckpointError(f"checkpoint '{path}' has no 'state_dict' of tensors; it cannot hold model weights")
    bad = next((k for k, t in weights.items() if t.is_floating_point() and not t.isfinite().all()), None)
    if bad is not None:
        raise CheckpointError(f"checkpoint '{path}' holds NaN or infinite weights (first: {bad}); use an earlier one")
    return checkpoint


def check_resumable(source, checkpoint: dict, fresh: dict, param_shapes: list) -> None:
    """Raise a one-line `CheckpointError` naming the first entry of `checkpoint` that cannot stand
    in for the same entry of `fresh`, a new trainer's `state_dict()`: what resuming restores.
    `param_shapes` are those of the optimizer's parameters, in its order."""
    where = f"checkpoint '{source}'" if source else "the checkpoint"
    missing = [key for key in fresh if key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"{where} lacks {', '.join(missing)}, which resuming needs; evaluate it with test.py, "
            "or start a new run with -c"
        )
    for key, value in fresh.items():
        kind, meaning = KINDS.get(type(value), (object, ""))
        saved = checkpoint[key]
        if saved is None and value == {}:  # (checkpoints of earlier versions: None for an empty state)
            continue
        if not isinstance(saved, kind) or isinstance(saved, bool):
            raise CheckpointError(f"{where}: '{key}' should be {meaning}, not {type(saved).__name__}")
        if kind is int and saved < 0:  # counts of epochs, steps, samples
            raise CheckpointError(f"{where}: '{key}' should be non-negative, not {saved}")
    optimizer, metrics = checkpoint["optimizer"], checkpoint["train_metrics"] or {}
    groups = optimizer.get("param_groups")
    if not (isinstance(optimizer.get("state"), dict) and isinstance(groups, list)) or not all(
        isinstance(group, dict) and isinstance(group.get("params"), list) for group in groups
    ):
        raise CheckpointError(f"{where}: 'optimizer' should be an optimizer's state_dict")
    if checkpoint["samples_done"] and not metrics:
        raise CheckpointError(f"{where} stops mid-epoch but holds no 'train_metrics' to continue it")
    sums, counts, states = metrics.get("sums"), metrics.get("counts"), metrics.get("states", {})
    if metrics and not (
        metrics.keys() <= {"sums", "counts", "states"}
        and _numbers(sums)
        and _numbers(counts)
        and sums.keys() == counts.keys()
    ):
        raise CheckpointError(f"{where}: 'train_metrics' should be 'sums' and 'counts' of numbers, by the same keys")
    if not (isinstance(states, dict) and all(_tensors(state) for state in states.values())):  # (earlier versions: none)
        raise CheckpointError(
            f"{where}: 'train_metrics' 'states' should map each epoch-level metric to a state_dict() of tensors"
        )
    best = checkpoint["monitor_best"]  # restored under the same monitor only; a fresh one holds ±inf (off: nan)
    if checkpoint["monitor"] == fresh["monitor"] and not _finite(best) and repr(best) != repr(fresh["monitor_best"]):
        raise CheckpointError(f"{where}: 'monitor_best' should be a finite number, not {best}")

    def restored(key):  # into an optimizer or scheduler of the type it was saved from only
        return (checkpoint["config"].get(key) or {}).get("type") == (fresh["config"].get(key) or {}).get("type")

    if restored("optimizer"):
        _check_optimizer(where, optimizer, fresh["optimizer"], param_shapes)
    if restored("lr_scheduler") and checkpoint["lr_scheduler"]:
        _check_settings(f"{where}: 'lr_scheduler':", checkpoint["lr_scheduler"], fresh["lr_scheduler"])
    if fresh["grad_scaler"] and checkpoint["grad_scaler"]:
        _check_settings(f"{where}: 'grad_scaler':", checkpoint["grad_scaler"], fresh["grad_scaler"])
    _check_random_states(where, checkpoint["rng"], fresh["rng"])


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value) -> bool:
    return isinstance(value, dict) and all(isinstance(number, int | float) for number in value.values())


def _tensors(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(t, torch.Tensor) for key, t in value.items()
    )


def _fits(saved, fresh) -> bool:
    """Whether `saved` can stand in for `fresh`: a tensor of its dtype and shape, a list of as many items
    that fit, a value of its kind for a finite number, bool or text; anything for the rest (None, inf)."""
    if isinstance(fresh, torch.Tensor):
        return isinstance(saved, torch.Tensor) and (saved.dtype, saved.shape) == (fresh.dtype, fresh.shape)
    if isinstance(fresh, list | tuple):
        return isinstance(saved, list | tuple) and len(saved) == len(fresh) and all(map(_fits, saved, fresh))
    if isinstance(fresh, bool | str):
        return type(saved) is type(fresh)
    return _finite(saved) or not _finite(fresh)


def _check_settings(where: str, saved: dict, fresh: dict) -> None:
    """torch restores an optimizer's, a scheduler's or a scaler's settings as they are: a text or
    NaN learning rate, or cut betas, would fail (or ruin) the steps, after the run folder is opened."""
    for key, value in fresh.items():
        if key in saved and not _fits(saved[key], value):
            what = "a finite number" if _finite(value) else f"like {value!r:.40}"
            raise CheckpointError(f"{where} '{key}' should be {what}, not {saved[key]!r:.40}")


def _check_optimizer(where: str, saved: dict, fresh: dict, shapes: list) -> None:
    """torch restores an optimizer's state by the position of each parameter in its groups, and
    checks no shapes: a mismatch would fail at the first step, after the run folder is opened."""
    sizes, fresh_sizes = ([len(group["params"]) for group in state["param_groups"]] for state in (saved, fresh))
    if sizes != fresh_sizes:
        raise CheckpointError(
            f"{where}: 'optimizer' has parameter groups of {sizes} parameters, this run's {fresh_sizes}; {SAME_GROUPS}"
        )
    for i, (group, fresh_group) in enumerate(zip(saved["param_groups"], fresh["param_groups"], strict=True)):
        names, fresh_names = group.get("param_names"), fresh_group.get("param_names")  # (none before named groups)
        if group.get("name") != fresh_group.get("name"):
            saved_name, fresh_name = (
                f"{g['name']!r:.40}" if "name" in g else "the default group" for g in (group, fresh_group)
            )
            raise CheckpointError(
                f"{where}: 'optimizer' parameter group {i} is {saved_name}, this run's {fresh_name}; {SAME_GROUPS}"
            )
        if names is not None and names != fresh_names:
            held = (
                next((name for name in names if name not in (fresh_names or [])), None)
                if isinstance(names, list)
                else None
            )
            differs = f"holds {held!s:.60}, which this run's does not" if held else "orders its parameters otherwise"
            raise CheckpointError(f"{where}: 'optimizer' parameter group {i} {differs}; {SAME_GROUPS}")
        _check_settings(f"{where}: 'optimizer' parameter group {i}:", group, fresh_group)
    shape_of = dict(zip((param for group in saved["param_groups"] for param in group["params"]), shapes, strict=True))
    for param, state in saved["state"].items():
        if param not in shape_of or not isinstance(state, dict):
            raise CheckpointError(f"{where}: 'optimizer' holds state for parameter {param}, which the optimizer lacks")
        shape = tuple(shape_of[param])
        for name, value in state.items():
            problem = _state_problem(name, value, shape)
            if problem:
                raise CheckpointError(f"{where}: 'optimizer' state '{name}' of parameter {param} {problem}")


def _state_problem(name: str, value, shape: tuple) -> str:
    """What is wrong with one entry of a parameter's optimizer state, or ''. Entries are tensors of
    the parameter's shape (a size of 1 stands for a factored dimension, as in Adafactor), or
    scalar counts that are never negative (a step; torch saved steps as numbers before 1.12)."""
    tensor = isinstance(value, torch.Tensor)
    if not tensor and not (name == "step" and _finite(value)):
        return f"is {value!r:.40}, not a tensor"
    if tensor and value.is_floating_point() and not bool(torch.isfinite(value).all()):
        return "holds NaN or infinite values"
    size = tuple(value.shape) if tensor else ()
    if not size and (shape or name == "step") and not (tensor and value.is_complex()) and not bool(value >= 0):
        return f"is {float(value)}, a count that cannot be negative"
    if size and (len(size) != len(shape) or any(n not in (m, 1) for n, m in zip(size, shape, strict=True))):
        return f"has shape {size}, the model's parameter has {shape}"
    return ""


def _check_random_states(where: str, rng: dict, fresh: dict) -> None:
    """One state per process, as many as there were processes, each laid out as this process's
    (a short one fails in torch or numpy); none for the GPU of a CPU run. Checkpoints of earlier
    versions hold torch's as a lone tensor, and no Python or numpy states."""
    for kind, (state, *_) in fresh.items():
        saved = rng.get(kind)
        saved = [saved] if isinstance(saved, torch.Tensor) else [] if saved is None and kind != "torch" else saved
        if (
            not isinstance(saved, list)
            or (kind == "torch" and not saved)
            or not all(state is None or _fits(s, state) or (s is None and kind == "cuda") for s in saved)
        ):
            raise CheckpointError(f"{where}: 'rng' holds no usable {kind} random state (one per process)")


def load_model_state(model: torch.nn.Module, state_dict: dict) -> None:
    """Load weights into `model`, explaining a mismatch in one line instead of a long report."""
    expected = model.state_dict()
    if not any(key in expected for key in state_dict):  # saved from DataParallel, DDP or torch.compile
        state_dict = dict(state_dict)
        for prefix in ("module.", "_orig_mod."):
            consume_prefix_in_state_dict_if_present(state_dict, prefix)
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    resized = [key for key in expected if key in state_dict and state_dict[key].shape != expected[key].shape]
    details = [f"{len(missing)} missing (first: {missing[0]})"] if missing else []
    details += [f"{len(unexpected)} unexpected (first: {unexpected[0]})"] if unexpected else []
    if resized:
        key = resized[0]
        details.append(f"{key} is {tuple(state_dict[key].shape)}, the model has {tuple(expected[key].shape)}")
    if details:
        raise CheckpointError(
            "the checkpoint's weights do not fit the model built from config key 'arch': "
            + "; ".join(details)
            + " - use the 'arch' settings the checkpoint was trained with"
        )
    model.load_state_dict(state_dict)


def run_checkpoints(folder: Path) -> list[Path]:
    """The numbered checkpoints in a run folder, from least to most trained."""

    def progress(match):  # a finished epoch ranks after every partial state of it
        return int(match.group(1)), math.inf if match.group(2) is None else int(match.group(2))

    found = [(progress(m), p) for p in Path(folder).glob("checkpoint-*.pth") if (m := NAME.match(p.name))]
    return [path for _, path in sorted(found)]


def find_latest(runs: Path, best: bool = False) -> tuple[Path, dict]:
    """The most trained loadable checkpoint of the newest run under `runs` (save_dir/name); with
    `best`, that run's model_best.pth if it loads (test.py and predict.py's `-r auto`)."""
    candidates = []
    for run in (folder for folder in Path(runs).glob("*") if folder.is_dir()):
        best_file = run / "model_best.pth"
        candidates += [best_file] * (best and best_file.is_file()) + run_checkpoints(run)[::-1]
    if not candidates:
        raise CheckpointError(f"--resume auto: no checkpoint under '{runs}'; train one first with train.py -c")
    newest_run = max(candidates, key=lambda p: p.stat().st_mtime).parent  # by its last checkpoint
    problems = []
    for path in [p for p in candidates if p.parent == newest_run]:
        try:
            return path, load_checkpoint(path)
        except CheckpointError as exc:
            logger.warning("Skipping %s: %s", path.name, exc)
            problems.append(str(exc))
    raise CheckpointError(f"--resume auto: no usable checkpoint in '{newest_run}': {problems[0]}")


def _copy_tensors(value):
    """A copy of `value` whose tensors are CPU copies: training goes on changing the originals."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone() if value.device.type == "cpu" else value.detach().cpu()
    if isinstance(value, dict):
        return {key: _copy_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):  # (a random state's 624 numbers: one C-level scan, no recursion)
        if any(map(isinstance, value, itertools.repeat((torch.Tensor, dict, list, tuple)))):
            return type(value)(_copy_tensors(item) for item in value)
        return type(value)(value)
    return value


class CheckpointWriter:
    """Writes snapshots in order, one at a time, on a background thread.

    Each write is atomic and is followed by pruning to `keep_last`, so older checkpoints go only
    once the new one is on disk. Weights holding NaN or infinity are never written. A failed
    write is raised by the next `save` or by `wait`, which must run before the process exits.
    """

    def __init__(self, keep_last: int) -> None:
        self.keep_last = keep_last
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: Future | None = None

    def save(self, state: dict, paths: list[Path]) -> None:
        """Queue a snapshot of `state` for each of `paths`; waits for the previous write first, so
        at most one snapshot is held in memory."""
        self.wait()
        self._pending = self._executor.submit(self._write, _copy_tensors(state), paths)

    def _write(self, state: dict, paths: list[Path]) -> None:
        weights = [t for t in state["state_dict"].values() if t.is_floating_point()]
        if not all(bool(t.isfinite().all()) for t in weights):  # a finite loss, but inf gradients
            raise runtime.NonFiniteLoss(f"the weights hold NaN or infinite values; {paths[0].name} was not saved")
        data = serialize(state)  # once, however many files get it
        for path in paths:
            try:
                save_checkpoint(data, path)
            except OSError as exc:
                raise CheckpointError(
                    f"could not write checkpoint '{path}': {exc.strerror or exc}; free space or fix permissions, "
                    + then_go_on(path.parent)
                ) from None
            for old in run_checkpoints(path.parent)[: -self.keep_last]:
                old.unlink(missing_ok=True)
            logger.info("Saved %s", path)

    def done(self) -> bool:
        """True when no write is under way (`wait` then returns at once)."""
        return self._pending is None or self._pending.done()

    def wait(self) -> None:
        """Block until the queued checkpoint is on disk; raise its failure, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


def create_run_dir(config: dict) -> Path:
    """Create `save_dir/name/<timestamp>`; runs started in the same second get distinct folders."""
    parent = Path(config["trainer"]["save_dir"]) / config["name"]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        run_dir = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            if not parent.is_dir():
                raise ConfigError(
                    f"config key 'trainer.save_dir': cannot create '{parent}' (a file is in the way)"
                ) from None
        except OSError as exc:
            raise ConfigError(f"config key 'trainer.save_dir': cannot create '{run_dir}': {exc.strerror}") from None
    raise ConfigError(f"could not create a new run folder in '{parent}'; clean it up")


def _is_latest(checkpoint: Path) -> bool:
    return run_checkpoints(checkpoint.parent)[-1:] == [checkpoint]


@contextlib.contextmanager
def run_folder(config: dict, resume_path: Path | None, guard):
    """The run's folder, held by the main process while it trains (None on the others): the
    resumed run's, or a new one, also when the checkpoint is not its run's latest (continuing
    there would overwrite the later ones). Under torchrun, when the main process cannot create
    or hold it, all processes stop."""
    with contextlib.ExitStack() as stack:
        run_dir = None
        if runtime.is_main():
            try:
                if resume_path is not None and _is_latest(resume_path):
                    run_dir = resume_path.parent
                else:
                    run_dir = create_run_dir(config)
                    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
                stack.enter_context(lock_run_dir(run_dir))
                sweep_abandoned_runs(run_dir.parent, run_dir)
                if run_dir == getattr(resume_path, "parent", None) and not _is_latest(resume_path):
                    raise ConfigError(f"the run of '{resume_path}' went on while this one started; resume again")
            except UserError as exc:
                guard.fail(exc)  # alone: raised at once; under torchrun: by every process, below
        guard.agree()
        yield run_dir


@contextlib.contextmanager
def lock_run_dir(run_dir: Path):
    """Hold `run_dir` while training into it: a second train.py into a live run (`-r auto` while it
    still trains, say) is refused with one line naming the process that holds it. The lock is the
    operating system's, so it is released even when that process is killed."""
    run_dir = Path(run_dir)
    lock, owner = FileLock(run_dir / ".lock", timeout=0), run_dir / ".lock-owner"
    try:
        lock.acquire()
    except Timeout:  # (an OSError too: first)
        who = owner.read_text(encoding="utf-8").strip() if owner.is_file() else "another process"
        raise ConfigError(
            f"run folder '{run_dir}' is in use by {who}; stop that run first, or wait for it to end"
        ) from None
    except (OSError, NotImplementedError) as exc:
        raise ConfigError(
            f"cannot lock run folder '{run_dir}' ({first_line(exc)}); does its filesystem support file locks?"
        ) from None
    try:
        owner.write_text(f"train.py (pid {os.getpid()} on {socket.gethostname()})\n", encoding="utf-8")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()
