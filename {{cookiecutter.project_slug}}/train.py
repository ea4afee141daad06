"""Train a model described by a config file.

python train.py -c config.json
python train.py -c config.json --lr 0.001 --bs 128 --set trainer.epochs=5
python train.py -r saved/DigitsCNN/<run>/checkpoint-epoch10.pth --set trainer.epochs=40
python train.py -c config.json -r auto       # the newest run's latest checkpoint
python train.py -c config.json --smoke      # two batches into a temporary folder
"""

import json
import logging
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from logger import attach_log_file, setup_logging
from parse_config import ConfigParser, arg_parser, create_run_dir, load_config, report, resolve_device, set_by_path
from trainer import Trainer
from utils import ConfigError, UserError
from utils.checkpoint import find_latest, load_checkpoint, run_checkpoints
from utils.errors import NonFiniteLoss, TrainingStopped

SMOKE_BATCHES = 2
logger = logging.getLogger("train")


def parse_args(argv=None):
    parser = arg_parser(__doc__)
    parser.add_argument("--lr", type=float, help="learning rate (sets optimizer.args.lr)")
    parser.add_argument("--bs", type=int, help="batch size (sets data_loader.args.batch_size)")
    parser.add_argument("--smoke", action="store_true", help="train two batches in a temporary folder, then delete it")
    return parser.parse_args(argv)


def read_config(args) -> tuple[ConfigParser, Path | None, dict | None]:
    """The validated config to train with, and the checkpoint to resume from (path and content)."""
    if args.config is None and args.resume in (None, "auto"):
        raise ConfigError("nothing to train: pass a config with -c config.json (--resume auto needs it too)")
    path = Path(args.resume) if args.resume not in (None, "auto") else None
    checkpoint = load_checkpoint(path) if path else None
    config = load_config(args.config) if args.config else checkpoint["config"]
    if args.lr is not None:
        set_by_path(config, f"optimizer.args.lr={args.lr!r}")
    if args.bs is not None:
        set_by_path(config, f"data_loader.args.batch_size={args.bs}")
    for assignment in args.set:
        set_by_path(config, assignment)
    parsed = ConfigParser(config)
    if args.resume == "auto":
        path, checkpoint = find_latest(Path(config["trainer"]["save_dir"]) / config["name"])
        print(f"Resuming from {path} (the most trained checkpoint of the newest run)")
    return parsed, path, checkpoint


def build_trainer(config: ConfigParser, device: torch.device, limit_batches: int | None = None) -> Trainer:
    data_loader = config.init_obj("data_loader", seed=config["seed"])
    model = config.init_obj("arch").to(device)
    optimizer = config.init_obj("optimizer", [p for p in model.parameters() if p.requires_grad])
    lr_scheduler = config.init_obj("lr_scheduler", optimizer) if config.config.get("lr_scheduler") else None
    return Trainer(
        model,
        config.function("loss", config["loss"]),
        [config.function("metrics", name) for name in config["metrics"]],
        optimizer,
        config.config,
        device,
        lr_scheduler=lr_scheduler,
        data_loader=data_loader,
        valid_data_loader=data_loader.split_validation(),
        limit_batches=limit_batches,
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config, resume_path, checkpoint = read_config(args)
        device = resolve_device(args.device)
        setup_logging(config["trainer"].get("verbosity", 1))
        seed = config["seed"]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if args.smoke:
            return smoke(config, device)
        trainer = build_trainer(config, device)
        if checkpoint is None:
            run_dir = create_run_dir(config.config)
            (run_dir / "config.json").write_text(json.dumps(config.config, indent=2) + "\n", encoding="utf-8")
        else:
            trainer.resume(checkpoint)
            if trainer.start_epoch > trainer.epochs:
                raise ConfigError(
                    f"the checkpoint has finished all trainer.epochs={trainer.epochs}; "
                    f"train further with --set trainer.epochs={trainer.epochs + 10}"
                )
            run_dir = resume_path.parent
            if resume_path.resolve() in [p.resolve() for p in run_checkpoints(run_dir)[:-1]]:
                run_dir = create_run_dir(config.config)  # continuing in place would overwrite later checkpoints
        attach_log_file(run_dir / "train.log")
        logger.info("Run folder: %s", run_dir)
        trainer.train(run_dir)
    except UserError as exc:
        return report(exc)
    except TrainingStopped as exc:
        print(f"error: {exc}" if exc.exit_code == NonFiniteLoss.exit_code else str(exc), file=sys.stderr)
        return exc.exit_code
    return 0


def smoke(config: ConfigParser, device: torch.device) -> int:
    """Train a couple of batches, save and reload a checkpoint, and leave no files behind."""
    with tempfile.TemporaryDirectory(prefix="smoke-", ignore_cleanup_errors=True) as tmp:
        config.config["trainer"].update(epochs=1, save_dir=tmp)
        trainer = build_trainer(config, device, limit_batches=SMOKE_BATCHES)
        log = trainer.train(create_run_dir(config.config))
        load_checkpoint(trainer.run_dir / "checkpoint-epoch1.pth", map_location="cpu")
    print(f"Smoke run passed on {device}: loss {log['loss']:.4f} after {SMOKE_BATCHES} batches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
