"""Kill and interrupt real training runs many times, and count what survived.

    OMP_NUM_THREADS=1 python scripts/reliability_trials.py --kills 30 --interrupts 10
    OMP_NUM_THREADS=1 python scripts/reliability_trials.py --kills 20 --interrupts 0 --channels 128

Bakes the default project into a temporary folder, then:
- kill trials: start a run that checkpoints every epoch, SIGKILL it at a random moment (saves
  happen several times a second, so many kills land mid-write), and check that the newest
  checkpoint loads with weights_only=True; the next trial resumes with `-r auto`.
- interrupt trials (POSIX): SIGTERM a 3-epoch run after a random number of steps, resume it from
  the checkpoint it saved, and compare the final weights with an uninterrupted run (torch.equal).
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TEMPLATE = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}


def bake(folder: Path) -> Path:
    env = {**ENV, "PYTORCH_TEMPLATE_SKIP_SMOKE": "1"}
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(folder), str(TEMPLATE)]
    subprocess.run(command, check=True, env=env, capture_output=True)
    return folder / "my_project"


def start(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=project,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(process: subprocess.Popen, marker: str) -> None:
    for line in process.stdout:
        if marker in line:
            return
    raise RuntimeError(f"the run ended before printing {marker!r}")


def kill_trials(project: Path, save_dir: Path, trials: int, rng: random.Random, channels: int) -> tuple[int, int]:
    args = ["-c", "config.json", "--set", f"trainer.save_dir={save_dir}", "--set", "trainer.save_period=1"]
    args += ["--set", f"arch.args.channels={channels}"]  # wider: bigger checkpoints, longer writes
    args += ["--set", "trainer.epochs=100000", "--set", "trainer.early_stop=0"]
    loadable = mid_write = 0
    for trial in range(trials):
        process = start(project, *args, *(["-r", "auto"] if trial else []))
        wait_for(process, "Saved")
        time.sleep(rng.uniform(0.0, 2.0))
        process.kill()
        process.communicate()
        (run,) = [p for p in save_dir.glob("*/*") if p.is_dir()]
        mid_write += any(run.glob(".tmp-*"))  # killed while writing: the next start sweeps it
        newest = max(run.glob("checkpoint-*.pth"), key=lambda p: p.stat().st_mtime)
        try:
            torch.load(newest, weights_only=True)
            loadable += 1
        except Exception as exc:  # a trial that fails is counted, not fatal
            print(f"  trial {trial}: {newest.name} does not load: {exc}")
    print(f"  {mid_write} of the kills landed while a checkpoint was being written")
    return loadable, trials


def final_weights(save_dir: Path) -> dict:
    (checkpoint,) = save_dir.glob("*/*/checkpoint-epoch3.pth")
    return torch.load(checkpoint, weights_only=True)["state_dict"]


def interrupt_trials(project: Path, root: Path, trials: int, rng: random.Random) -> tuple[int, int]:
    common = ["-c", "config.json", "--set", "trainer.epochs=3", "--set", "trainer.save_period=1"]
    common += ["--set", "trainer.verbosity=2"]
    reference_dir = root / "reference"
    subprocess.run(
        [sys.executable, "train.py", *common, "--set", f"trainer.save_dir={reference_dir}"],
        cwd=project,
        env=ENV,
        check=True,
        capture_output=True,
    )
    reference = final_weights(reference_dir)
    equal = 0
    for trial in range(trials):
        save_dir = root / f"trial{trial}"
        process = start(project, *common, "--set", f"trainer.save_dir={save_dir}")
        wait_for(process, f"step {rng.randint(1, 60)} loss")
        process.send_signal(rng.choice([signal.SIGTERM, signal.SIGINT]))
        process.communicate()
        newest = max(save_dir.glob("*/*/checkpoint-*.pth"), key=lambda p: p.stat().st_mtime)
        subprocess.run(
            [sys.executable, "train.py", "-r", str(newest)], cwd=project, env=ENV, check=True, capture_output=True
        )
        weights = final_weights(save_dir)
        same = all(torch.equal(weights[k], reference[k]) for k in reference)
        equal += same
        print(
            f"  interrupt trial {trial}: exit {process.returncode}, resumed from {newest.name}: "
            f"{'identical' if same else 'DIFFERENT'}"
        )
    return equal, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--interrupts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, default=32, help="model width in the kill trials")
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - picks kill moments, not secrets
    with tempfile.TemporaryDirectory() as tmp:
        project = bake(Path(tmp) / "bake")
        ok, total = kill_trials(project, Path(tmp) / "kills", args.kills, rng, args.channels)
        print(f"kill -9 trials: {ok}/{total} left a loadable newest checkpoint")
        if os.name == "posix" and args.interrupts:
            same, total = interrupt_trials(project, Path(tmp) / "interrupts", args.interrupts, rng)
            print(f"interrupt-and-resume trials: {same}/{total} ended bit-identical to the uninterrupted run")


if __name__ == "__main__":
    main()
