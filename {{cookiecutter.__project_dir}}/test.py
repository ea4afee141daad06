"""Evaluate a checkpoint on the test split and print its loss and metrics.

python test.py -r saved/<name>/<run>/model_best.pth
python test.py -r <checkpoint> -d cpu
python test.py -r <checkpoint> -c config.json   # data and model from this config instead
"""

from logger import setup_logging
from parse_config import (
    ConfigParser,
    arg_parser,
    check_num_classes,
    load_config,
    report,
    resolve_device,
    set_by_path,
)
from trainer import evaluate
from utils import CheckpointError, ConfigError, UserError
from utils.checkpoint import load_checkpoint, load_model_state


def main(argv=None) -> int:
    args = arg_parser(__doc__).parse_args(argv)
    try:
        if args.resume is None:
            raise ConfigError("pass the checkpoint to evaluate with -r, e.g. -r saved/<name>/<run>/model_best.pth")
        device = resolve_device(args.device)
        checkpoint = load_checkpoint(args.resume, map_location=device)
        config_dict = load_config(args.config) if args.config else checkpoint["config"]
        for assignment in args.set:
            set_by_path(config_dict, assignment)
        config = ConfigParser(config_dict)
        setup_logging(config["trainer"].get("verbosity", 1))
        data_loader = config.init_obj("data_loader", seed=config["seed"], training=False, shuffle=False)
        model = config.init_obj("arch").to(device)
        check_num_classes(data_loader, model)
        trained_on = checkpoint.get("classes")
        if trained_on and data_loader.classes and data_loader.classes != trained_on:
            raise CheckpointError(
                f"the checkpoint was trained on the classes {', '.join(trained_on)}, but the test data has "
                f"{', '.join(data_loader.classes)}; evaluate on data with the training classes"
            )
        load_model_state(model, checkpoint["state_dict"])
        criterion = config.function("loss", config["loss"])
        metric_fns = [config.function("metrics", name) for name in config["metrics"]]
        log = evaluate(model, data_loader, criterion, metric_fns, device)
    except UserError as exc:
        return report(exc)
    print(f"Test results for {args.resume} (epoch {checkpoint['epoch']}, {data_loader.num_samples} samples):")
    for key, value in log.items():
        print(f"    {key:15s}: {value:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
