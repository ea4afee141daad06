"""Train a model described by a config file.

python train.py -c config.json
python train.py -c config.json --lr 0.001 --bs 128 --set trainer.epochs=5
python train.py -r saved/<name>/<run>/checkpoint-epoch10.pth --set trainer.epochs=40
python train.py -c config.json -r auto      # continue the newest run from its latest checkpoint
python train.py -c config.json --smoke      # two batches into a temporary folder, then delete it
torchrun --standalone --nproc_per_node=2 train.py -c config.json
"""

import inspect
import logging
import tempfile
from pathlib import Path

import torch

from base import BaseTrainer
from logger import log_file, setup_logging
from parse_config import ConfigParser
from utils import dry_run, runtime
from utils.checkpoint import create_run_dir, find_latest, load_checkpoint, run_folder
from utils.errors import ConfigError, script_arguments
from utils.param_groups import optimizer_groups

logger = logging.getLogger("train")
SMOKE_BATCHES = 2


def parse_args(argv=None):
    parser = script_arguments(
        __doc__, "checkpoint (.pth) to continue from; 'auto' (with -c): the latest", "config file (.json, .yaml)"
    )
    parser.add_argument("--lr", type=float, help="learning rate (sets optimizer.args.lr)")
    parser.add_argument("--bs", type=int, help="batch size (sets data_loader.args.batch_size)")
    parser.add_argument("--smoke", action="store_true", help="train two batches in a temporary folder, then delete it")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    interrupted = "stopped by SIGINT before training started; nothing was saved"
    return runtime.exit_code(run, parse_args(argv), interrupted)


def run(args) -> int:
    resume_path = Path(args.resume) if args.resume not in (None, "auto") else None
    checkpoint = load_checkpoint(resume_path) if resume_path else None
    config = ConfigParser.from_args(args, checkpoint)
    if args.resume == "auto":
        resume_path, checkpoint = find_latest(Path(config["trainer"]["save_dir"]) / config["name"])
        print(f"Resuming from {resume_path} (the most trained checkpoint of the newest run)")
    cpu_only = config.get("n_gpu") == 0  # pytorch-template's n_gpu: 0
    device = runtime.setup("cpu" if cpu_only and args.device == "auto" else args.device)
    setup_logging(config["trainer"]["verbosity"] if runtime.is_main() else 0)
    if args.smoke:
        return smoke(config, device)
    fit(config, device, resume_path, checkpoint)
    return 0


def build(config: ConfigParser, device: torch.device, data_loader=None, tracking: bool = True) -> BaseTrainer:
    """The data, model, optimizer, scheduler and trainer that `config` describes, each built from
    its config key; `tracking=False` leaves out the config's trackers (the smoke run's)."""
    data_loader = config.init_obj("data_loader") if data_loader is None else data_loader
    valid_data_loader = data_loader.split_validation()
    model = build_model(config, device)
    logger.info("%s", model)
    dry_run.check_num_classes(data_loader, model)
    optimizer = config.init_obj("optimizer", optimizer_groups(model, config, config.targets["optimizer"]))
    lr_scheduler = config.init_obj("lr_scheduler", optimizer) if config.get("lr_scheduler") else None
    trainer_class = config.targets["trainer"]  # trainer.type: Trainer of trainer/trainer.py, or your own
    trainer = trainer_class(
        model, config.loss, config.metrics, optimizer, config, device, data_loader, valid_data_loader, lr_scheduler
    )
    trainer.trackers.trackers += config.init_trackers() if tracking else []
    return trainer


def build_model(config: ConfigParser, device: torch.device) -> torch.nn.Module:
    """The model of config key `arch`, on `device` (test.py and predict.py load weights into it)."""
    model = config.init_obj("arch")
    if not isinstance(model, torch.nn.Module):
        made = type(model).__name__
        raise ConfigError(f"config key 'arch.type': {config['arch']['type']} made a {made}, not a torch.nn.Module")
    return model.to(device)


def fit(config: ConfigParser, device: torch.device, resume_path=None, checkpoint=None, callbacks=()) -> BaseTrainer:
    """Train as `config` says, continuing `checkpoint` if given; return the trainer (sweep.py
    reads its best value; `callbacks` are its `epoch_end_callbacks`)."""
    runtime.seed_everything(config["seed"])  # the data loaders' default seed too
    trainer = build(config, device)
    trainer.epoch_end_callbacks += callbacks
    if runtime.world_size() > 1:  # each process its own dropout masks (the data order has its own seed)
        runtime.seed_everything(config["seed"] + runtime.rank())
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint, resume_path)
        if trainer.epochs_done >= trainer.epochs:
            raise ConfigError(
                f"the checkpoint has finished all trainer.epochs={trainer.epochs}; "
                f"train further with --set trainer.epochs={trainer.epochs + 10}"
            )
    dry_run.check(trainer)  # one batch through everything before any file is written
    with run_folder(config, resume_path, trainer.guard) as run_dir:  # one train.py per run folder
        if run_dir is not None:
            logger.info("Run folder: %s%s", run_dir, f" (from {resume_path})" if resume_path else "")
        with log_file(run_dir and run_dir / "train.log"):
            trainer.train(run_dir)
    return trainer


def smoke(config: ConfigParser, device: torch.device) -> int:
    """Train a couple of batches, save and reload a checkpoint, and leave no files behind.

    Data that is not bundled with the project (its loader has `write_sample`) is replaced by a
    small generated sample in the temporary folder, so the smoke run needs no download.
    """
    runtime.seed_everything(config["seed"])
    with tempfile.TemporaryDirectory(prefix="smoke-", ignore_cleanup_errors=True) as tmp:
        config["trainer"].update(epochs=1, save_dir=tmp)
        write_sample = getattr(config.targets["data_loader"], "write_sample", None)
        if write_sample is not None:
            classes = config["arch"].get("args", {}).get("num_classes")
            accepts = "num_classes" in inspect.signature(write_sample).parameters
            write_sample(f"{tmp}/data", **({"num_classes": classes} if classes and accepts else {}))
            config["data_loader"].setdefault("args", {})["data_dir"] = f"{tmp}/data"
            print(f"Smoke run on a generated sample of {config['data_loader']['type']} data (no download)")
        trainer = build(config, device, tracking=False)
        trainer.limit_batches = SMOKE_BATCHES
        log = trainer.train(create_run_dir(config))
        trainer.load_state_dict(load_checkpoint(trainer.run_dir / "checkpoint-epoch1.pth"))
    print(f"Smoke run passed on {device}: loss {log['loss']:.4f} after {SMOKE_BATCHES} batches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
