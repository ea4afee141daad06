"""How much the generated trainer costs over a hand-written PyTorch loop, and how fast things start.

    python benchmarks/overhead.py                 # everything, about 3 minutes on 2 CPU cores
    python benchmarks/overhead.py --only trainer  # just the trainer-vs-raw-loop ratios
    python benchmarks/overhead.py --only trainer --template ../old-checkout   # another version of it
    python benchmarks/overhead.py --only first-step   # first step of a fresh process, logging on

The generated project is baked into a temporary folder (hooks off) and imported from there. For
each model, the generated trainer (default logging: TensorBoard on, a checkpoint every epoch,
validation every epoch) and a hand-written loop (the five lines, plus the loss/accuracy sums and the
validation pass any real loop needs) train the same model on the same data with the same batch size
for the same number of steps, in alternation, `--repeats` times each; the ratio of the medians is
printed, and the time from the start of training to the end of the first optimizer step (the
trainer's `train()` call; the loop's first line), which shows what starting the logging costs.
Torch runs on one thread: on a small machine the default thread count makes timings swing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]


def bake(output_dir: Path, smoke: bool, template: Path = TEMPLATE) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not smoke:
        env["PYTORCH_TEMPLATE_SKIP_SMOKE"] = "1"
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(output_dir), str(template)],
        check=True,
        env=env,
        capture_output=True,
    )
    return output_dir / "my_project"


def timed(command: list[str], cwd: Path | None = None, env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


TINY_MLP = """
from torch import nn


class TinyMLP(nn.Module):
    \"\"\"Two small linear layers: per-step overhead dominates its training time.\"\"\"

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)
"""


def trainer_vs_raw(project: Path, repeats: int, epochs: int, device_name: str) -> list[tuple]:
    # The MLP goes into a file of its own in model/, as a user's model would.
    (project / "model" / "tiny_mlp.py").write_text(TINY_MLP, encoding="utf-8")
    sys.path.insert(0, str(project))
    os.chdir(project)
    import torch
    import torch.nn.functional as F
    from parse_config import ConfigParser, load_config

    torch.set_num_threads(1)
    device = torch.device(device_name)
    base_config = load_config("config.json")
    mlp = {"type": "TinyMLP", "args": {}}
    # (label, arch, batch size, default logging: TensorBoard + checkpoint + best model every epoch)
    scenarios = [
        ("SmallCNN, batch 64", base_config["arch"], 64, True),
        ("TinyMLP, batch 64", mlp, 64, True),
        ("TinyMLP, batch 64, no TB/ckpt", mlp, 64, False),
        ("TinyMLP, batch 11", mlp, 11, True),
    ]
    results = []
    for label, arch, batch_size, logging_on in scenarios:
        times = {"trainer": [], "raw": [], "trainer first": [], "raw first": []}
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                config = json.loads(json.dumps(base_config))
                config["arch"] = arch
                config["metrics"] = ["accuracy"]
                config["data_loader"]["args"]["batch_size"] = batch_size
                config["trainer"].update(epochs=epochs, save_period=1 if logging_on else 10**6, save_dir=tmp)
                config["trainer"].update(tensorboard=logging_on, verbosity=0)
                if not logging_on:
                    config["trainer"]["monitor"] = "off"
                torch.manual_seed(0)
                parsed = ConfigParser(config)
                trainer = build_trainer(parsed, device)
                run_dir = Path(tmp) / "run"
                run_dir.mkdir()
                first = first_step_clock(trainer.optimizer)
                start = time.perf_counter()
                trainer.train(run_dir)
                times["trainer"].append(time.perf_counter() - start)
                times["trainer first"].append(first[0] - start)

                torch.manual_seed(0)
                total, first_step = raw_loop(parsed, epochs, device, torch, F)
                times["raw"].append(total)
                times["raw first"].append(first_step)
        steps = trainer.global_step
        results.append((f"{label} ({steps} steps)", *(statistics.median(times[key]) for key in times)))
    return results


def build_trainer(parsed, device):
    """The trainer as the project's train.py builds it (`train.build`; before it, the config built it)."""
    import train

    if hasattr(train, "build"):
        return train.build(parsed, device)
    return parsed.build_trainer(device, parsed.build_data_loader())


def first_step_clock(optimizer) -> list[float]:
    """A list that receives the time at which `optimizer` finishes its first step."""
    done: list[float] = []
    optimizer.register_step_post_hook(lambda *_: done or done.append(time.perf_counter()))
    return done


def raw_loop(config, epochs: int, device, torch, F) -> tuple[float, float]:
    """The hand-written baseline: same model, data, split, batch size, optimizer and scheduler.
    Returns its time, and the time to the end of its first optimizer step."""
    loader = config.init_obj("data_loader")
    images, labels = loader.dataset.tensors
    train_indices = loader.batch_sampler.indices
    model = config.init_obj("arch").to(device)
    optimizer = config.init_obj("optimizer", model.parameters())
    scheduler = config.init_obj("lr_scheduler", optimizer)
    batch_size = loader.batch_size
    first = first_step_clock(optimizer)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        generator = torch.Generator().manual_seed(epoch)
        order = train_indices[torch.randperm(len(train_indices), generator=generator)]
        loss_sum, correct = torch.zeros((), device=device), torch.zeros((), device=device)
        for batch in order.split(batch_size):
            x, y = images[batch].to(device, non_blocking=True), labels[batch].to(device, non_blocking=True)
            optimizer.zero_grad()
            output = model(x)
            loss = F.cross_entropy(output, y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (output.argmax(1) == y).sum()
        model.eval()
        val_loss, val_correct = torch.zeros((), device=device), torch.zeros((), device=device)
        with torch.no_grad():
            for batch in loader.valid_indices.split(batch_size):
                x, y = images[batch].to(device, non_blocking=True), labels[batch].to(device, non_blocking=True)
                output = model(x)
                val_loss += F.cross_entropy(output, y) * len(y)
                val_correct += (output.argmax(1) == y).sum()
        scheduler.step()
        _ = (loss_sum.item(), correct.item(), val_loss.item(), val_correct.item())
    return time.perf_counter() - start, first[0] - start


def first_step_child(project: Path, kind: str) -> None:
    """In a fresh process (torch imported, nothing else): train the shipped config with default
    logging until its first optimizer step is done; print the milliseconds since training began."""
    sys.path.insert(0, str(project))
    os.chdir(project)
    import torch
    import torch.nn.functional as F
    from parse_config import ConfigParser, load_config

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config("config.json")
        config["trainer"].update(epochs=1, save_dir=tmp, verbosity=0, tensorboard=True)
        parsed = ConfigParser(config)
        if kind == "raw":
            _, first = raw_loop(parsed, 1, torch.device("cpu"), torch, F)
        else:
            trainer = build_trainer(parsed, torch.device("cpu"))
            (Path(tmp) / "run").mkdir()
            done = first_step_clock(trainer.optimizer)
            start = time.perf_counter()
            trainer.train(Path(tmp) / "run")
            first = done[0] - start
    print(f"{first * 1000:.2f}")


def first_step(project: Path, repeats: int) -> tuple[float, float]:
    """Median milliseconds to the first step, trainer and raw loop, each in fresh processes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    times = {"trainer": [], "raw": []}
    for _ in range(repeats):
        for kind in times:
            command = [sys.executable, __file__, "--first-step-child", kind, "--project", str(project)]
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            times[kind].append(float(result.stdout.split()[-1]))
    return statistics.median(times["trainer"]), statistics.median(times["raw"])


def startup(project: Path, repeats: int) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    help_times, import_times = [], []
    for _ in range(repeats):
        help_times.append(timed([sys.executable, "train.py", "--help"], cwd=project, env=env))
        import_times.append(timed([sys.executable, "-c", "import torch"], env=env))
    return statistics.median(help_times), statistics.median(import_times)


def bake_times(repeats: int) -> tuple[float, float]:
    without, with_smoke = [], []
    for _ in range(repeats):
        for smoke, bucket in ((False, without), (True, with_smoke)):
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                bake(Path(tmp), smoke)
                bucket.append(time.perf_counter() - start)
    return statistics.median(without), statistics.median(with_smoke)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per timed run")
    parser.add_argument("--only", choices=["trainer", "first-step", "startup", "bake"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the trainer comparison only)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="the template to bake (default: this one)")
    parser.add_argument("--first-step-child", choices=["trainer", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_step_child:
        return first_step_child(args.project, args.first_step_child)
    with tempfile.TemporaryDirectory() as tmp:
        project = bake(Path(tmp), smoke=False, template=args.template)
        if args.only in (None, "startup"):
            help_s, import_s = startup(project, args.repeats)
            print(f"startup: train.py --help {help_s:.2f} s, python -c 'import torch' {import_s:.2f} s")
        if args.only in (None, "bake"):
            plain, smoke = bake_times(max(3, args.repeats // 2))
            print(f"bake: without smoke run {plain:.2f} s, with smoke run {smoke:.2f} s")
        if args.only in (None, "first-step"):
            trainer_ms, raw_ms = first_step(project, args.repeats)
            print(
                f"first step in a fresh process, shipped config, TensorBoard on: trainer {trainer_ms:.1f} ms, "
                f"raw loop {raw_ms:.1f} ms, difference {trainer_ms - raw_ms:+.1f} ms"
            )
        if args.only in (None, "trainer"):
            print(f"trainer vs raw loop on {args.device}, {args.epochs} epochs, 1 torch thread, medians:")
            for name, trainer_s, raw_s, trainer_first, raw_first in trainer_vs_raw(
                project, args.repeats, args.epochs, args.device
            ):
                print(
                    f"  {name:42s} trainer {trainer_s:.3f} s  raw {raw_s:.3f} s  ratio {trainer_s / raw_s:.3f}x  "
                    f"first step: trainer {trainer_first * 1000:.1f} ms, raw {raw_first * 1000:.1f} ms"
                )


if __name__ == "__main__":
    main()
