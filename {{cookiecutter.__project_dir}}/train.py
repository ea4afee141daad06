"""Train a model described by a config file.

python train.py -c config.json
python train.py -c config.json --lr 0.001 --bs 128 --set trainer.epochs=5
python train.py -r saved/<name>/<run>/checkpoint-epoch10.pth --set trainer.epochs=40
python train.py -c config.json -r auto      # continue the newest run from its latest checkpoint
python train.py -c config.json --smoke      # two batches into a temporary folder, then delete it
torchrun --standalone --nproc_per_node=2 train.py -c config.json
"""

import argparse
import inspect
import logging
import random
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

from logger import log_file, setup_logging
from parse_config import ConfigParser
from utils import distributed, preflight
from utils.checkpoint import create_run_dir, find_latest, load_checkpoint, run_folder
from utils.errors import ArgumentParser, ConfigError, UserError, quiet_thread_os_errors, report
from utils.stopping import TrainingStopped

SMOKE_BATCHES = 2


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="config file (.json, or .yaml / .yml)")
    parser.add_argument("-r", "--resume", help="checkpoint (.pth) to continue from; 'auto' (with -c): the latest")
    parser.add_argument("-d", "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N, mps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--lr", type=float, help="learning rate (sets optimizer.args.lr)")
    parser.add_argument("--bs", type=int, help="batch size (sets data_loader.args.batch_size)")
    parser.add_argument("--smoke", action="store_true", help="train two batches in a temporary folder, then delete it")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    hook, threading.excepthook = threading.excepthook, quiet_thread_os_errors
    try:
        return run(args)
    except UserError as exc:  # under torchrun, mostly every process has it: the main one prints it
        if distributed.is_main() or getattr(exc, "only_here", False):
            return report(exc, "" if distributed.is_main() else f"[rank {distributed.rank()}] ")
        return 2
    except KeyboardInterrupt:  # Ctrl-C before training started: nothing to save yet
        print("stopped by SIGINT before training started; nothing was saved", file=sys.stderr)
        return 130
    except TrainingStopped as exc:
        if distributed.is_main() and str(exc):  # (empty when another process failed and said why)
            print(f"error: {exc}" if exc.exit_code == 3 else str(exc), file=sys.stderr)
        return exc.exit_code
    finally:
        threading.excepthook = hook
        distributed.cleanup()  # only once run()'s objects, the DDP model among them, are gone


def run(args: argparse.Namespace) -> int:
    resume_path = Path(args.resume) if args.resume not in (None, "auto") else None
    checkpoint = load_checkpoint(resume_path, resume=True) if resume_path else None
    config = ConfigParser.from_args(args, checkpoint)
    if args.resume == "auto":
        resume_path, checkpoint = find_latest(Path(config["trainer"]["save_dir"]) / config["name"])
        print(f"Resuming from {resume_path} (the most trained checkpoint of the newest run)")
    cpu_only = config.config.get("n_gpu") == 0  # pytorch-template's n_gpu: 0
    device = distributed.setup("cpu" if cpu_only and args.device == "auto" else args.device)
    setup_logging(config["trainer"]["verbosity"] if distributed.is_main() else 0)
    if args.smoke:
        return smoke(config, device)
    fit(config, device, resume_path, checkpoint)
    return 0


def fit(config: ConfigParser, device: torch.device, resume_path=None, checkpoint=None, callbacks=()):
    """Train as `config` says, continuing `checkpoint` if given; return the trainer (sweep.py
    reads its best value; `callbacks` are its `epoch_end_callbacks`)."""
    seed_everything(config["seed"])  # the data loaders' default seed too
    trainer = config.build_trainer(device, config.build_data_loader())
    trainer.epoch_end_callbacks += callbacks
    if distributed.world_size() > 1:  # each process its own dropout masks (the data order has its own seed)
        seed_everything(config["seed"] + distributed.rank())
    if checkpoint is not None:
        trainer.resume(checkpoint)
        if trainer.start_epoch > trainer.epochs:
            raise ConfigError(
                f"the checkpoint has finished all trainer.epochs={trainer.epochs}; "
                f"train further with --set trainer.epochs={trainer.epochs + 10}"
            )
    preflight.check(trainer)  # one batch through everything before any file is written
    with run_folder(config.config, resume_path, trainer.guard) as run_dir:  # one train.py per run folder
        if run_dir is not None:
            where = f" (from {resume_path})" if resume_path else ""
            logging.getLogger("train").info("Run folder: %s%s", run_dir, where)
        with log_file(run_dir and run_dir / "train.log"):
            trainer.train(run_dir)
    return trainer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def smoke(config: ConfigParser, device: torch.device) -> int:
    """Train a couple of batches, save and reload a checkpoint, and leave no files behind.

    Data that is not bundled with the project (its loader has `write_sample`) is replaced by a
    small generated sample in the temporary folder, so the smoke run needs no download.
    """
    seed_everything(config["seed"])
    with tempfile.TemporaryDirectory(prefix="smoke-", ignore_cleanup_errors=True) as tmp:
        config["trainer"].update(epochs=1, save_dir=tmp)
        write_sample = getattr(config.targets["data_loader"], "write_sample", None)
        if write_sample is not None:
            classes = config["arch"].get("args", {}).get("num_classes")
            accepts = "num_classes" in inspect.signature(write_sample).parameters
            write_sample(f"{tmp}/data", **({"num_classes": classes} if classes and accepts else {}))
            config["data_loader"].setdefault("args", {})["data_dir"] = f"{tmp}/data"
            print(f"Smoke run on a generated sample of {config['data_loader']['type']} data (no download)")
        trainer = config.build_trainer(device, config.build_data_loader(), tracking=False)
        trainer.limit_batches = SMOKE_BATCHES
        log = trainer.train(create_run_dir(config.config))
        load_checkpoint(trainer.run_dir / "checkpoint-epoch1.pth", resume=True)
    print(f"Smoke run passed on {device}: loss {log['loss']:.4f} after {SMOKE_BATCHES} batches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
