"""Evaluate a checkpoint on the whole test split and print its loss and metrics.

python test.py -r saved/<name>/<run>/model_best.pth
python test.py -r <checkpoint> -d cpu
python test.py -r <checkpoint> -c config.json   # data and model from this config instead
"""

import argparse

import torch

from logger import setup_logging
from parse_config import ConfigParser
from utils import distributed
from utils.checkpoint import load_checkpoint, load_model_state
from utils.errors import ArgumentParser, CheckpointError, ConfigError, UserError, report


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--resume", help="the checkpoint (.pth) to evaluate")
    parser.add_argument(
        "-c", "--config", help="config file to take the data and model from (default: the checkpoint's)"
    )
    parser.add_argument("-d", "--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N, mps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    args = parser.parse_args(argv)
    try:
        log, checkpoint, samples = evaluate(args)
    except UserError as exc:
        return report(exc)
    print(f"Test results for {args.resume} (epoch {checkpoint.get('epoch', '?')}, {samples} samples):")
    for key, value in log.items():
        print(f"    {key:15s}: {value:.6f}")
    return 0


def evaluate(args: argparse.Namespace) -> tuple[dict, dict, int]:
    if args.resume is None:
        raise ConfigError("pass the checkpoint to evaluate with -r, e.g. -r saved/<name>/<run>/model_best.pth")
    device = distributed.single_device(args.device)
    checkpoint = load_checkpoint(args.resume, map_location=device)
    config = ConfigParser.from_args(args, checkpoint)
    # Evaluating needs none of training's extras (fp16 needs CUDA, TensorBoard may be missing here).
    amp = "off" if config["trainer"]["amp"] == "fp16" and device.type != "cuda" else config["trainer"]["amp"]
    config["trainer"].update(amp=amp, tensorboard=False, compile=False)
    setup_logging(config["trainer"]["verbosity"])
    torch.manual_seed(config["seed"])
    loader = config.build_data_loader(training=False)
    trained_on = checkpoint.get("classes")
    if trained_on and loader.classes and loader.classes != trained_on:
        raise CheckpointError(
            f"the checkpoint was trained on the classes {', '.join(trained_on)}, but the test "
            f"data has {', '.join(loader.classes)}; evaluate on data with the training classes"
        )
    trainer = config.build_trainer(device, loader, tracking=False)
    load_model_state(trainer.raw_model, checkpoint["state_dict"])
    return trainer.evaluate(loader), checkpoint, loader.n_samples


if __name__ == "__main__":
    raise SystemExit(main())
