"""Evaluate a checkpoint on the whole test split and print its loss and metrics.

python test.py -r saved/<name>/<run>/model_best.pth
python test.py -c config.json -r auto          # the newest run's best checkpoint (else its latest)
python test.py -r <checkpoint> -d cpu
python test.py -r <checkpoint> -c config.json   # data and model from this config instead
"""

import inspect
from pathlib import Path

import torch

from logger import setup_logging
from parse_config import ConfigParser
from train import build_model
from utils import runtime
from utils.checkpoint import find_latest, load_checkpoint, load_model_state
from utils.errors import CheckpointError, ConfigError, script_arguments


def main(argv=None) -> int:
    parser = script_arguments(
        __doc__,
        "the checkpoint (.pth) to evaluate; 'auto' (with -c): the newest run's best",
        "config file to take the data and model from (default: the checkpoint's)",
    )
    return runtime.exit_code(evaluate, parser.parse_args(argv), "stopped by SIGINT; nothing was evaluated")


def evaluate(args) -> int:
    device = runtime.single_device(args.device)
    path, checkpoint, config = load_trained(args, device)
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
    model = trained_model(config, checkpoint, device)
    # The config's trainer scores (its validation_step); evaluating needs no optimizer.
    trainer = config.targets["trainer"](model, config.loss, config.metrics, None, config, device, loader)
    log = trainer.evaluate(loader)
    print(f"Test results for {path} (epoch {checkpoint.get('epoch', '?')}, {loader.n_samples} samples):")
    for key, value in log.items():
        print(f"    {key:15s}: {value:.6f}")
    return 0


def load_trained(args, device: torch.device, out=None) -> tuple[Path, dict, ConfigParser]:
    """The checkpoint of `-r` and the config to rebuild its model from (`-c`, else the checkpoint's,
    with --set on top). `-r auto`: the newest run's best checkpoint of `-c`'s config, named on `out`."""
    if args.resume is None:
        raise ConfigError(
            "pass the checkpoint to evaluate with -r, e.g. -r saved/<name>/<run>/model_best.pth "
            "(or -c <config> -r auto)"
        )
    if args.resume != "auto":
        checkpoint = load_checkpoint(args.resume, map_location=device)
        return Path(args.resume), checkpoint, ConfigParser.from_args(args, checkpoint)
    config = ConfigParser.from_args(args)
    path, checkpoint = find_latest(Path(config["trainer"]["save_dir"]) / config["name"], best=True)
    which = "best" if path.name == "model_best.pth" else "latest"
    print(f"Using {path} (the {which} checkpoint of the newest run)", file=out)
    return path, checkpoint, config


def trained_model(config: ConfigParser, checkpoint: dict, device: torch.device) -> torch.nn.Module:
    """The model of config key `arch` with the checkpoint's weights, on `device`, in eval mode."""
    model = build_model(config, device)
    load_model_state(model, checkpoint["state_dict"])
    return model.eval()


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
