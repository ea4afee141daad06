"""What predict.py reads and writes: the input files, and one CSV row per input, written whole.

Rows hold the predicted class, its probability (softmax of the model's scores) and the `top_k`
classes as `name:probability`; a model with one output per input (regression) gets that value.
"""

import csv
import io
import sys
from pathlib import Path

import torch

from utils.checkpoint import write_atomically
from utils.errors import ConfigError, DataError, first_line


def input_files(inputs: list[str]) -> list[Path]:
    """The files named, and every file under the folders named (recursively, sorted, leaving out
    hidden ones such as .DS_Store), each once, in order."""
    files = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.is_file())
            files += sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"input '{name}' does not exist; name image files or folders of them")
    if not files:
        raise DataError(f"no files in {', '.join(inputs)}; name the files to predict, or folders holding them")
    return list(dict.fromkeys(files))


def new_output(name: str | None) -> Path | None:
    """The `-o` file, refused at once if it exists: predict.py never overwrites a file."""
    if name is not None and Path(name).exists():
        raise ConfigError(f"-o {name}: the file exists and is never overwritten; choose another path or delete it")
    return None if name is None else Path(name)


class Predictions:
    """The rows of a CSV of predictions, added batch by batch; unreadable inputs are named on
    stderr and skipped."""

    def __init__(self, classes: list[str] | None, top_k: int) -> None:
        self.classes, self.top_k = classes, top_k
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.skipped = 0
        self._shape: torch.Size | None = None  # of the first input read: a batch is one tensor

    def read(self, read_input, paths: list[Path]) -> tuple[list[Path], torch.Tensor | None]:
        """The inputs `read_input` makes of `paths`, stacked into a batch, and the paths it read."""
        read, samples = [], []
        for path in paths:
            try:
                sample = read_input(path)
                self._shape = sample.shape if self._shape is None else self._shape
                if sample.shape != self._shape:
                    raise DataError(f"its input has shape {tuple(sample.shape)}, the first one {tuple(self._shape)}")
            except (DataError, OSError) as exc:
                reason = first_line(exc)
                print(f"skipped: {reason if str(path) in reason else f'{path}: {reason}'}", file=sys.stderr)
                self.skipped += 1
                continue
            read.append(path)
            samples.append(sample)
        return read, torch.stack(samples) if samples else None

    def add(self, paths: list[Path], outputs: torch.Tensor) -> None:
        """A row for each of `paths` from the model's `outputs` for them."""
        if not isinstance(outputs, torch.Tensor) or outputs.ndim not in (1, 2):
            what = f"shape {tuple(outputs.shape)}" if isinstance(outputs, torch.Tensor) else type(outputs).__name__
            raise ConfigError(
                f"the model returned {what} for a batch; predict.py takes class scores (batch, classes) "
                "or one value per input (batch,) or (batch, 1)"
            )
        outputs = outputs.detach().float().cpu()
        if outputs.ndim == 1 or outputs.shape[1] == 1:  # a value per input (regression)
            self.header = ["path", "output"]
            self.rows += [
                [str(path), f"{value:.8g}"] for path, value in zip(paths, outputs.flatten().tolist(), strict=True)
            ]
            return
        n = outputs.shape[1]
        names = self.classes if self.classes and len(self.classes) == n else [str(i) for i in range(n)]
        k = min(self.top_k, n)
        self.header = ["path", "prediction", "probability", *(f"top{i}" for i in range(1, k + 1))]
        top = outputs.softmax(dim=1).topk(k, dim=1)
        for path, probabilities, indices in zip(paths, top.values.tolist(), top.indices.tolist(), strict=True):
            ranked = [f"{names[i]}:{p:.6f}" for p, i in zip(probabilities, indices, strict=True)]
            self.rows.append([str(path), names[indices[0]], f"{probabilities[0]:.6f}", *ranked])

    def write(self, path: Path | None) -> None:
        """The CSV to `path` (complete or absent, never over an existing file), else to stdout."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerows([self.header, *self.rows])
        if path is None:
            sys.stdout.write(text.getvalue())
            return
        new_output(str(path))  # (once more: a file of that name may have appeared meanwhile)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(text.getvalue().encode("utf-8"), path)
        except OSError as exc:
            raise ConfigError(f"-o {path}: cannot write it ({exc.strerror or exc}); choose another path") from None
