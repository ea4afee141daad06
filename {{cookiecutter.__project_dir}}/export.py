"""Export a trained model to one file that runs without this project's code.

python export.py -r saved/<name>/<run>/model_best.pth                 # writes saved/<name>/<run>/model_best.pt2
python export.py -c config.json -r auto                                # the newest run's best checkpoint
python export.py -r <checkpoint> --format onnx                         # model_best.onnx (pip install onnx onnxscript)
python export.py -r <checkpoint> -o exported/digits.pt2 -d cuda        # a .pt2 for CUDA (it then needs CUDA)

A .pt2 file runs on the device it was exported on: the CPU unless -d says otherwise.
"""

import inspect

import torch

from parse_config import ConfigParser
from test import load_trained, trained_model
from utils import export as exporting
from utils import runtime
from utils.errors import DataError, script_arguments


def main(argv=None) -> int:
    parser = script_arguments(
        __doc__,
        "the checkpoint (.pth) to export",
        "config file to take the model and the example data from (default: the checkpoint's)",
    )
    parser.add_argument(
        "--format",
        choices=sorted(exporting.FORMATS),
        default="export",
        help="export: a .pt2 file (default); onnx: an .onnx file",
    )
    parser.add_argument("-o", "--output", help="the file to write (default: next to the checkpoint, .pt2 or .onnx)")
    # A .pt2 file runs on the device it was exported on: the CPU, unless asked, runs anywhere.
    parser.set_defaults(device="cpu")
    return runtime.exit_code(export, parser.parse_args(argv), "stopped by SIGINT; nothing was written")


def export(args) -> int:
    if args.format == "onnx":
        exporting.require_onnx()
    # An ONNX file holds no device: it is traced on the CPU and checked with ONNX Runtime's CPU kernels.
    device = runtime.single_device("cpu" if args.format == "onnx" else args.device)
    checkpoint_path, checkpoint, config = load_trained(args, device)
    path = exporting.output_path(str(checkpoint_path), args.output, args.format)
    torch.manual_seed(config["seed"])
    model = trained_model(config, checkpoint, device)
    inputs, classes = example_inputs(config)
    metadata = {
        "classes": checkpoint.get("classes") or classes,
        "input_shape": [None, *inputs.shape[1:]],  # None: any batch size
        "input_dtype": str(inputs.dtype).removeprefix("torch."),
    }
    data, checked = exporting.exported(model, inputs.to(device), args.format, metadata)
    exporting.write(data, path)
    print(f"Wrote {path}: {checked}")
    shape = f"({', '.join(['N', *map(str, inputs.shape[1:])])}) {metadata['input_dtype']}"
    if args.format == "export":
        print(f'Run it with torch alone: torch.export.load("{path.as_posix()}").module()(x)  # x: {shape}')
    else:
        print(f'Run it with onnxruntime: InferenceSession("{path.as_posix()}").run(None, {{"input": x}})  # x: {shape}')
    print("Its class names and input shape: README.md, 'Export'")
    return 0


def example_inputs(config: ConfigParser) -> tuple[torch.Tensor, list | None]:
    """The model's input in a real batch of at least two samples (the test split's first batch,
    else the validation split's), so that the file is traced with the true input shape; and
    the data's class names."""
    params = inspect.signature(config.targets["data_loader"]).parameters
    wanted = {"training": False, "validation_split": 0, "num_workers": 0}  # one batch needs no workers
    loader = config.init_obj("data_loader", **{key: value for key, value in wanted.items() if key in params})
    loader = loader.all_samples() if "training" in params else (loader.split_validation() or loader.all_samples())
    parts = []
    for batch in loader:
        inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
        if not isinstance(inputs, torch.Tensor):
            raise DataError(
                f"{config['data_loader']['type']} gives a {type(inputs).__name__} as a batch's input; "
                "export.py exports models that take one tensor"
            )
        parts.append(inputs)
        if sum(len(part) for part in parts) >= 2:
            return torch.cat(parts), loader.classes
    raise DataError(f"{config['data_loader']['type']} has fewer than 2 samples; export.py needs 2 to trace the batch")


if __name__ == "__main__":
    raise SystemExit(main())
