"""A trained model as one file that runs without this project: torch.export (.pt2) or ONNX (.onnx).

`exported(model, inputs, fmt, metadata)` traces the model with a dynamic batch dimension, loads
the result back and checks that its outputs match the model's at two batch sizes, then returns
the file's bytes; `write` puts them in place atomically and never over an existing file.
`metadata` (class names, input shape) is stored as JSON text: in the .pt2 file's extra files,
in the ONNX model's metadata_props.
"""

import contextlib
import io
import json
import logging
from pathlib import Path

import torch

from utils.checkpoint import write_atomically
from utils.errors import ConfigError, UserError, first_line, is_user_bug

FORMATS = {"export": ".pt2", "onnx": ".onnx"}
# Within this of the model's own outputs, or the export is refused (float32 on one device; the
# exported graph may fuse or reorder a few operations, ONNX Runtime uses its own kernels).
RTOL, ATOL = 1e-4, 1e-5
TOLERANCE = "rtol=1e-4, atol=1e-5"
ONNX_MISSING = "--format onnx needs the onnx and onnxscript packages: pip install onnx onnxscript"


class ExportError(UserError):
    """The model cannot be exported as it is written, or the file does not reproduce it."""


def output_path(checkpoint: str, output: str | None, fmt: str) -> Path:
    """Where to write: `output`, or next to the checkpoint with the format's suffix; never a file
    that exists."""
    path = Path(output) if output else Path(checkpoint).with_suffix(FORMATS[fmt])
    refuse_existing(path)
    if not path.parent.is_dir():
        raise ConfigError(f"-o {path}: the folder {path.parent} does not exist; create it or choose another path")
    return path


def refuse_existing(path: Path) -> None:
    if path.exists():
        raise ConfigError(f"{path} already exists and is never overwritten; delete it or pass another path with -o")


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError(ONNX_MISSING) from None


def exported(model: torch.nn.Module, inputs: torch.Tensor, fmt: str, metadata: dict) -> tuple[bytes, str]:
    """The file's bytes, and a sentence saying how they were checked against `model` (in eval
    mode) on `inputs` (a real batch of at least two samples) and on its first sample alone."""
    with torch.no_grad():  # a bug in the model shows here, with its own traceback
        expected = [model(inputs), model(inputs[:1])]
    batch = torch.export.Dim("batch", min=1)
    text = {key: json.dumps(value) for key, value in metadata.items()}
    try:
        with _quiet_torch():
            if fmt == "export":
                program = torch.export.export(model, (inputs,), dynamic_shapes=({0: batch},))
                buffer = io.BytesIO()
                torch.export.save(program, buffer, extra_files=text)
                data = buffer.getvalue()
            else:
                onnx_program = torch.onnx.export(
                    model, (inputs,), dynamo=True, dynamic_shapes=({0: batch},), input_names=["input"], verbose=False
                )
                onnx_program.model.metadata_props.update(text)
                data = onnx_program.model_proto.SerializeToString()
    except Exception as exc:
        if is_user_bug(exc, raised_there=True):
            raise  # raised by the model's own code while traced: a bug, with its traceback
        cause = exc.__cause__ if fmt == "onnx" and exc.__cause__ is not None else exc
        raise ExportError(
            f"{type(model).__name__} cannot be exported ({first_line(cause)}); "
            "README.md, 'Export', says what torch.export needs of a model"
        ) from None
    actual = _run_back(data, fmt, [inputs, inputs[:1]])
    if actual is None:
        return data, "not checked against the model (pip install onnxruntime to have it checked)"
    for size, got, wanted in zip((len(inputs), 1), actual, expected, strict=True):
        try:
            torch.testing.assert_close(got, wanted, rtol=RTOL, atol=ATOL, check_device=False)
        except AssertionError as exc:
            detail = next((line.strip() for line in str(exc).splitlines() if "Greatest absolute" in line), "")
            raise ExportError(
                f"the exported {type(model).__name__} does not reproduce the model's outputs on a batch of "
                f"{size} ({TOLERANCE}): {detail or first_line(exc)}"
            ) from None
    return data, f"its outputs match the model's on real batches of {len(inputs)} and 1 ({TOLERANCE})"


def _run_back(data: bytes, fmt: str, batches: list[torch.Tensor]) -> list | None:
    """The outputs of the file `data` on each batch, loaded as a user would load it; None when
    ONNX Runtime is not installed."""
    if fmt == "export":
        module = torch.export.load(io.BytesIO(data)).module()
        with torch.no_grad():
            return [module(batch) for batch in batches]
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    outputs = []
    for batch in batches:
        results = [torch.from_numpy(array) for array in session.run(None, {"input": batch.cpu().numpy()})]
        outputs.append(results[0] if len(results) == 1 else results)
    return outputs


def write(data: bytes, path: Path) -> None:
    """Write `data` to `path` through a temporary file in the same folder: a failure at any
    moment leaves no half-written file."""
    refuse_existing(path)  # (it may have appeared while exporting)
    write_atomically(data, path)


@contextlib.contextmanager
def _quiet_torch():
    """torch.export prints the partial graph and logs guard warnings on stderr when a model cannot
    be traced: the one-line error replaces them."""
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        torch_logger.setLevel(level)
