"""Train a model described by a config file.

python train.py -c config.json
python train.py -c config.json --lr 0.001 --bs 128 --set trainer.epochs=5
python train.py -r saved/<name>/<run>/checkpoint-epoch10.pth --set trainer.epochs=40
python train.py -c config.json -r auto       # the newest run's latest checkpoint
python train.py -c config.json --smoke      # two batches into a temporary folder
python train.py -c config.yaml              # YAML configs work the same way
"""

import random
import sys
import tempfile

import numpy as np
import torch

from logger import setup_logging
from parse_config import (
    ConfigParser,
    arg_parser,
    check_num_classes,
    create_run_dir,
    from_args,
    open_run_dir,
    report,
    resolve_device,
)
from trainer import Trainer
from utils import ConfigError, UserError, distributed
from utils.checkpoint import load_checkpoint
from utils.errors import NonFiniteLoss, TrainingStopped

SMOKE_BATCHES = 2


def parse_args(argv=None):
    parser = arg_parser(__doc__)
    parser.add_argument("--lr", type=float, help="learning rate (sets optimizer.args.lr)")
    parser.add_argument("--bs", type=int, help="batch size (sets data_loader.args.batch_size)")
    parser.add_argument("--smoke", action="store_true", help="train two batches in a temporary folder, then delete it")
    return parser.parse_args(argv)


def build_trainer(config: ConfigParser, device: torch.device, limit_batches: int | None = None) -> Trainer:
    data_loader = config.init_obj("data_loader", seed=config["seed"])
    model = config.init_obj("arch").to(device)
    check_num_classes(data_loader, model)
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
        return run(args)
    except UserError as exc:
        return report(exc)
    except TrainingStopped as exc:
        if distributed.is_main():
            print(f"error: {exc}" if isinstance(exc, NonFiniteLoss) else str(exc), file=sys.stderr)
        return exc.exit_code
    finally:
        distributed.cleanup()  # only once run()'s objects, the DDP model among them, are gone


def run(args) -> int:
    config, resume_path, checkpoint = from_args(args)
    device = distributed.setup(args.device) or resolve_device(args.device)
    setup_logging(config["trainer"].get("verbosity", 1) if distributed.is_main() else 0)
    seed = config["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if args.smoke:
        return smoke(config, device)
    trainer = build_trainer(config, device)
    if checkpoint is not None:
        trainer.resume(checkpoint)
        if trainer.start_epoch > trainer.epochs:
            raise ConfigError(
                f"the checkpoint has finished all trainer.epochs={trainer.epochs}; "
                f"train further with --set trainer.epochs={trainer.epochs + 10}"
            )
    trainer.train(open_run_dir(config.config, resume_path) if distributed.is_main() else None)
    return 0


def smoke(config: ConfigParser, device: torch.device) -> int:
    """Train a couple of batches, save and reload a checkpoint, and leave no files behind.

    Data that is not bundled with the project (its loader has `write_sample`) is replaced by a
    small generated sample in the temporary folder, so the smoke run needs no download.
    """
    with tempfile.TemporaryDirectory(prefix="smoke-", ignore_cleanup_errors=True) as tmp:
        config.config["trainer"].update(epochs=1, save_dir=tmp)
        write_sample = getattr(config.target("data_loader"), "write_sample", None)
        if write_sample is not None:
            write_sample(f"{tmp}/data")
            config.config["data_loader"].setdefault("args", {})["data_dir"] = f"{tmp}/data"
            print(f"Smoke run on a generated sample of {config['data_loader']['type']} data (no download)")
        trainer = build_trainer(config, device, limit_batches=SMOKE_BATCHES)
        log = trainer.train(create_run_dir(config.config))
        load_checkpoint(trainer.run_dir / "checkpoint-epoch1.pth", map_location="cpu")
    print(f"Smoke run passed on {device}: loss {log['loss']:.4f} after {SMOKE_BATCHES} batches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
