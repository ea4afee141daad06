"""export.py: a checkpoint's model as one file (.pt2 or .onnx) that runs without this project,
gives the model's outputs at any batch size, and records its class names and input shape."""

import sys

import numpy as np
import pytest
import torch

import export
import train
from tests.helpers import (
    PROJECT_DIR,
    TEST_CONFIG,
    assert_outputs_of_model,
    build_trainer,
    only_run_dir,
    run_exported,
    run_script,
)
from tests.parts import TinyCNN
from utils.checkpoint import TEMP_PREFIX

DIGITS = [str(digit) for digit in range(10)]


class BranchingCNN(TinyCNN):
    """A model whose forward takes a branch by the value of its input: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if x.mean() > 0 else super().forward(-x)


class NoisyCNN(TinyCNN):
    """A model that draws new noise at each call, also in eval mode: no file reproduces its outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x + torch.rand_like(x))


class BuggyCNN(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * scale  # noqa: F821 (the bug)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint written by a real (one-epoch) training run on the bundled digits."""
    run_dir = tmp_path_factory.mktemp("run")
    build_trainer("trainer.epochs=1").train(run_dir)
    return run_dir / "checkpoint-epoch1.pth"


def digits_batches() -> list[torch.Tensor]:
    """Real test images: a batch of 50, and one of 3 (a batch size export.py did not try)."""
    with np.load(PROJECT_DIR / "data" / "digits.npz") as arrays:
        images = torch.from_numpy(arrays["x_test"][:50]).float().div(16.0).unsqueeze(1)
    return [images, images[:3]]


def checkpoint_naming(trained, tmp_path, arch_type: str):
    """A copy of the trained checkpoint whose config names another model class (same weights)."""
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["config"]["arch"]["type"] = arch_type
    torch.save(checkpoint, tmp_path / "model.pth")
    return tmp_path / "model.pth"


def test_exported_program_runs_without_the_project_at_any_batch_size(trained, tmp_path, capsys):
    """`python export.py -r CHECKPOINT` writes CHECKPOINT.pt2 next to it: torch.export.load alone
    runs it, with the model's outputs on real batches of two sizes, and its class names and input
    shape read back."""
    assert export.main(["-r", str(trained)]) == 0
    written = trained.with_suffix(".pt2")
    out = capsys.readouterr().out
    assert f"Wrote {written}" in out and "torch.export.load(" in out
    assert not list(trained.parent.glob(f"{TEMP_PREFIX}*"))
    outputs, metadata = run_exported(written, digits_batches(), tmp_path)
    assert_outputs_of_model(outputs, trained, digits_batches())
    assert metadata == {"classes": DIGITS, "input_shape": [None, 1, 8, 8], "input_dtype": "float32"}


@pytest.mark.slow
def test_onnx_file_runs_in_onnxruntime_with_the_models_outputs(trained, tmp_path):
    """`--format onnx` writes a .onnx file that ONNX Runtime runs at any batch size, with the
    model's outputs; its metadata_props hold the class names and the input shape."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package)
    written = tmp_path / "digits.onnx"
    done = run_script("export.py", "-r", str(trained), "--format", "onnx", "-o", str(written))
    assert done.returncode == 0, done.stderr
    assert f"Wrote {written}" in done.stdout and "InferenceSession(" in done.stdout
    outputs, metadata = run_exported(written, digits_batches(), tmp_path)
    assert_outputs_of_model(outputs, trained, digits_batches())
    assert metadata == {"classes": DIGITS, "input_shape": [None, 1, 8, 8], "input_dtype": "float32"}


def test_an_existing_file_is_never_overwritten(trained, tmp_path, capsys):
    target = tmp_path / "model.pt2"
    target.write_text("someone's file", encoding="utf-8")
    assert export.main(["-r", str(trained), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {target} already exists and is never overwritten; delete it or pass another path with -o\n"
    assert target.read_text(encoding="utf-8") == "someone's file"


def test_without_onnx_the_error_says_what_to_install(trained, tmp_path, capsys, monkeypatch):
    """Where onnx or onnxscript is not installed (here: made unimportable), --format onnx is one line."""
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert export.main(["-r", str(trained), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    assert capsys.readouterr().err == (
        "error: --format onnx needs the onnx and onnxscript packages: pip install onnx onnxscript\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_model_torch_export_cannot_trace_is_one_line_and_writes_nothing(trained, tmp_path, capsys):
    """Control flow on the input's values cannot be exported: one line with torch's reason and
    where to read more, exit code 2, no file (and no temporary file) left."""
    checkpoint = checkpoint_naming(trained, tmp_path, "tests.test_export.BranchingCNN")
    assert export.main(["-r", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: BranchingCNN cannot be exported (Could not guard on data-dependent expression")
    assert err.endswith("README.md, 'Export', says what torch.export needs of a model\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pth"]


def test_a_file_that_does_not_reproduce_the_model_is_not_written(trained, tmp_path, capsys):
    """The file is loaded back and run before it is written: outputs that differ from the model's
    are one line with the largest difference, and no file."""
    checkpoint = checkpoint_naming(trained, tmp_path, "tests.test_export.NoisyCNN")
    assert export.main(["-r", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    expected = (
        "error: the exported NoisyCNN does not reproduce the model's outputs on a batch of 64 (rtol=1e-4, atol=1e-5)"
    )
    assert err.startswith(expected) and "Greatest absolute difference" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pth"]


def test_a_bug_in_the_model_keeps_its_traceback(trained, tmp_path):
    checkpoint = checkpoint_naming(trained, tmp_path, "tests.test_export.BuggyCNN")
    with pytest.raises(NameError, match="scale"):
        export.main(["-r", str(checkpoint)])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pth"]


def test_auto_exports_the_best_checkpoint_of_the_newest_run(tmp_path, capsys):
    """`-c config -r auto`, as test.py and predict.py take it; the file goes beside that checkpoint."""
    options = ["-c", TEST_CONFIG, "--set", f"trainer.save_dir={tmp_path.as_posix()}", "--set", "trainer.epochs=1"]
    assert train.main([*options, "-d", "cpu"]) == 0
    capsys.readouterr()
    assert export.main([*options, "-r", "auto"]) == 0
    best = only_run_dir(tmp_path) / "model_best.pth"
    out = capsys.readouterr().out
    assert out.startswith(f"Using {best} (the best checkpoint of the newest run)\n"), out
    assert f"Wrote {best.with_suffix('.pt2')}: " in out
