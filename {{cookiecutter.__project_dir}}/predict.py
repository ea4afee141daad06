"""Predict the class (or value) of each input file with a trained model: one CSV row per file.

python predict.py -r saved/<name>/<run>/model_best.pth digit.png more/    # CSV on stdout
python predict.py -c config.json -r auto inputs/ -o predictions.csv      # the newest run's best
python predict.py -r <checkpoint> inputs/ --top-k 5 --bs 256 -d cpu
"""

import functools
import inspect
import sys

import torch

from test import load_trained, trained_model
from utils import runtime
from utils.errors import ConfigError, DataError, script_arguments
from utils.predictions import Predictions, input_files, new_output


def main(argv=None) -> int:
    parser = script_arguments(
        __doc__,
        "the checkpoint (.pth) to predict with; 'auto' (with -c): the newest run's best",
        "config file to take the model and the reading of inputs from (default: the checkpoint's)",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="input files, or folders searched recursively")
    parser.add_argument("-o", "--output", help="CSV file to write; it must not exist yet (default: stdout)")
    parser.add_argument("--bs", type=int, help="inputs per batch (default: data_loader.args.batch_size)")
    parser.add_argument("--top-k", type=int, default=3, help="most likely classes listed per input (default: 3)")
    return runtime.exit_code(predict, parser.parse_args(argv), "stopped by SIGINT; nothing was written")


def predict(args) -> int:
    if args.top_k < 1:
        raise ConfigError(f"--top-k {args.top_k}: list at least 1 class")
    output, files = new_output(args.output), input_files(args.inputs)
    device = runtime.single_device(args.device)
    path, checkpoint, config = load_trained(args, device, out=sys.stderr)  # stdout is for the CSV
    read_input = input_reader(config)
    model = trained_model(config, checkpoint, device)
    predictions = Predictions(checkpoint.get("classes"), args.top_k)
    batch_size = config["data_loader"].get("args", {}).get("batch_size", 64)
    with torch.no_grad():
        for start in range(0, len(files), batch_size):
            paths, inputs = predictions.read(read_input, files[start : start + batch_size])
            if paths:
                predictions.add(paths, model(inputs.to(device)))
    if not predictions.rows:
        raise DataError(f"no predictions: none of the {len(files)} inputs could be read (each is named above)")
    predictions.write(output)
    skipped = f"; skipped {predictions.skipped} (named above)" if predictions.skipped else ""
    print(
        f"{len(predictions.rows)} predictions with {path}{f' in {output}' if output else ''}{skipped}", file=sys.stderr
    )
    return 0


def input_reader(config):
    """The data loader's `read_input(path)`, given the `data_loader.args` it names (image_size, say):
    it reads one file as the loader reads the test split's samples."""
    read_input = getattr(config.targets["data_loader"], "read_input", None)
    if read_input is None:
        raise ConfigError(
            f"{config['data_loader']['type']} has no read_input method, so predict.py cannot read files for it; "
            "add a static method read_input(path) that returns one input as the test split's look (README: Predict)"
        )
    params = list(inspect.signature(read_input).parameters.values())[1:]
    every = any(param.kind is param.VAR_KEYWORD for param in params)
    named = {param.name for param in params}
    given = config["data_loader"].get("args", {})
    return functools.partial(read_input, **{key: value for key, value in given.items() if every or key in named})


if __name__ == "__main__":
    raise SystemExit(main())
