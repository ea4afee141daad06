"""Evaluate a checkpoint on the whole test split and print its loss and metrics.

python test.py -r saved/<name>/<run>/model_best.pth
python test.py -r <checkpoint> -d cpu
python test.py -r <checkpoint> -c config.json   # data and model from this config instead
"""

import inspect

import torch

from logger import setup_logging
from parse_config import ConfigParser
from train import build
from utils import runtime
from utils.checkpoint import load_checkpoint, load_model_state
from utils.errors import CheckpointError, ConfigError, script_arguments


def main(argv=None) -> int:
    parser = script_arguments(
        __doc__,
        "the checkpoint (.pth) to evaluate",
        "config file to take the data and model from (default: the checkpoint's)",
    )
    return runtime.exit_code(evaluate, parser.parse_args(argv), "stopped by SIGINT; nothing was evaluated")


def evaluate(args) -> int:
    if args.resume is None:
        raise ConfigError("pass the checkpoint to evaluate with -r, e.g. -r saved/<name>/<run>/model_best.pth")
    device = runtime.single_device(args.device)
    checkpoint = load_checkpoint(args.resume, map_location=device)
    config = ConfigParser.from_args(args, checkpoint)
    # Evaluating needs none of training's extras (fp16 needs CUDA, TensorBoard may be missing here).
    amp = "off" if config["trainer"]["amp"] == "fp16" and device.type != "cuda" else config["trainer"]["amp"]
    config["trainer"].update(amp=amp, tensorboard=False, compile=False)
    setup_logging(config["trainer"]["verbosity"])
    torch.manual_seed(config["seed"])
    loader = test_loader(config)
    trained_on = checkpoint.get("classes")
    if trained_on and loader.classes and loader.classes != trained_on:
        raise CheckpointError(
            f"the checkpoint was trained on the classes {', '.join(trained_on)}, but the test "
            f"data has {', '.join(loader.classes)}; evaluate on data with the training classes"
        )
    trainer = build(config, device, loader, tracking=False)
    load_model_state(trainer.raw_model, checkpoint["state_dict"])
    log = trainer.evaluate(loader)
    print(f"Test results for {args.resume} (epoch {checkpoint.get('epoch', '?')}, {loader.n_samples} samples):")
    for key, value in log.items():
        print(f"    {key:15s}: {value:.6f}")
    return 0


def test_loader(config: ConfigParser):
    """Every sample of the test split: the config's data loader, asked for `training=False`."""
    params = inspect.signature(config.targets["data_loader"]).parameters
    if "training" not in params:
        raise ConfigError(
            f"{config['data_loader']['type']} has no 'training' argument, so test.py cannot ask it "
            "for the test split; add training=True to its __init__ (README: Use your own dataset)"
        )
    no_split = {"validation_split": 0} if "validation_split" in params else {}  # it is for training data
    return config.init_obj("data_loader", training=False, **no_split).all_samples()


if __name__ == "__main__":
    raise SystemExit(main())
