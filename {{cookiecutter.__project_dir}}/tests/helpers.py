"""Helpers for the tests: the tests' config, trainers built from it, and the entry scripts run as
real processes."""

import csv
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch

import train
from parse_config import ConfigParser, load_config, set_by_path
from utils import runtime
from utils.export import ATOL, RTOL

PROJECT_DIR = Path(__file__).resolve().parents[1]
# The tests train the tests' own small model (tests/parts.py) on the bundled digits with this
# config, so they run offline and in seconds whatever the project's own config and model are.
TEST_CONFIG = "tests/config.json"


def config_for_tests(*assignments: str) -> dict:
    """The tests' config with `--set`-style assignments applied, reading the bundled data by an
    absolute path (tests may run from any folder)."""
    config = load_config(PROJECT_DIR / TEST_CONFIG)
    for assignment in (f"data_loader.args.data_dir={(PROJECT_DIR / 'data').as_posix()}", *assignments):
        set_by_path(config, assignment)
    return config


def build_trainer(*assignments: str, config: dict | None = None):
    """A real trainer on the CPU from the tests' config, seeded as train.py seeds it."""
    parsed = ConfigParser(config_for_tests(*assignments) if config is None else config)
    runtime.seed_everything(parsed.get("seed", 0))
    return train.build(parsed, torch.device("cpu"))


def signal_at_loss_call(trainer, call: int, signum: int = signal.SIGTERM) -> None:
    """Make this process receive a real `signum` during the `call`-th training loss computation."""
    criterion, calls = trainer.criterion, [0]

    def loss_then_signal(output, target):
        calls[0] += torch.is_grad_enabled()  # validation runs without gradients
        if calls[0] == call and torch.is_grad_enabled():
            signal.raise_signal(signum)  # (os.kill would end the process on Windows)
        return criterion(output, target)

    trainer.criterion = loss_then_signal


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def shipped_config() -> str:
    """The project's own config file: config.json, or config.yaml for a project made with YAML."""
    return next(name for name in ("config.json", "config.yaml") if (PROJECT_DIR / name).is_file())


def run_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python <args>` in the project folder, as a user would, and capture its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def metrics_rows(run_dir: Path) -> list[dict]:
    """The rows of a run folder's metrics.csv, one per epoch."""
    with open(Path(run_dir) / "metrics.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")  # (2 processes, gloo on the CPU)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """Run `torchrun <args>` with two processes in the project folder and capture its output."""
    return run_script(*TORCHRUN, *args)


def start_script(*args: str, command: tuple[str, ...] = (), group: bool = False) -> subprocess.Popen:
    """Start `python [command] <args>` in the project folder; read its merged output line by line.
    `group`: in a process group of its own, which `os.killpg(process.pid, ...)` signals whole."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *command, *args],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=group,
    )


def read_until(process: subprocess.Popen, marker: str) -> list[str]:
    """Lines printed by `process` up to and including the first one containing `marker`."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"process ended before printing {marker!r}:\n{''.join(lines)}")


def finish(process: subprocess.Popen, timeout: float) -> str:
    """Wait for `process` to end and return the rest of its output; kill it after `timeout` s.

    Reads through `process.stdout`: `communicate(timeout=...)` reads the pipe itself and would
    skip the lines that `read_until` has already buffered there."""
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        process.kill()

    killer = threading.Timer(timeout, kill)
    killer.start()
    try:
        rest = process.stdout.read()
        process.wait()
    finally:
        killer.cancel()
    if timed_out.is_set():
        raise subprocess.TimeoutExpired(process.args, timeout, output=rest)
    return rest


def step_losses(output: str) -> dict[int, str]:
    """The per-step losses that train.py logs at verbosity 2, by global step."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "step" and parts[2] == "loss":
            found[int(parts[1])] = parts[3]
    return found


def only_run_dir(save_dir: Path) -> Path:
    """The one run folder under `save_dir` (<name>/<run>, with its config.json)."""
    (run_dir,) = [p for p in Path(save_dir).glob("*/*") if (p / "config.json").is_file()]
    return run_dir


# Loads an exported file as its user would, in a process that cannot import the project (-I: no
# current folder on sys.path), and saves its outputs on each batch and the metadata it records.
EXPORTED_PROBE = """
import importlib.util, json, sys, torch
path, inputs, results = sys.argv[1:]
assert importlib.util.find_spec("parse_config") is None, "the project is importable"
batches = torch.load(inputs, weights_only=True)
if path.endswith(".pt2"):
    extra = {"classes": "", "input_shape": "", "input_dtype": ""}
    module = torch.export.load(path, extra_files=extra).module()
    outputs = [module(batch) for batch in batches]
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    extra = session.get_modelmeta().custom_metadata_map
    outputs = [torch.from_numpy(session.run(None, {"input": batch.numpy()})[0]) for batch in batches]
metadata = {key: json.loads(extra[key]) for key in ("classes", "input_shape", "input_dtype")}
torch.save({"outputs": outputs, "metadata": metadata}, results)
"""


def run_exported(path: Path, batches: list[torch.Tensor], folder: Path) -> tuple[list[torch.Tensor], dict]:
    """The outputs of the exported file `path` on each of `batches`, and its recorded metadata,
    from a fresh process that never imported the project."""
    torch.save(batches, folder / "inputs.pt")
    ran = run_script("-I", "-c", EXPORTED_PROBE, str(path), str(folder / "inputs.pt"), str(folder / "results.pt"))
    assert ran.returncode == 0, ran.stderr
    results = torch.load(folder / "results.pt", weights_only=True)
    return results["outputs"], results["metadata"]


def assert_outputs_of_model(outputs: list[torch.Tensor], checkpoint_path: Path, batches: list[torch.Tensor]) -> None:
    """Each of `outputs` is, within export.py's tolerance, what the checkpoint's model (built from
    its own config, in eval mode) computes on the batch of `batches` at the same place."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model = ConfigParser(checkpoint["config"]).init_obj("arch")
    model.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        for got, batch in zip(outputs, batches, strict=True):
            assert got.shape[0] == len(batch)
            torch.testing.assert_close(got, model.eval()(batch), rtol=RTOL, atol=ATOL)
