"""predict.py: files in, one CSV row per file out, from a checkpoint alone; test.py -r auto and an
evaluation that needs no optimizer. The tests' model on the bundled digits (every project has them)."""

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import predict
import test as test_script
import train
from data_loader.digits import DigitsDataLoader
from parse_config import ConfigParser
from tests.helpers import PROJECT_DIR, TEST_CONFIG, config_for_tests, only_run_dir, run_script
from tests.parts import LinearNet
from utils.checkpoint import load_checkpoint

DATA = (PROJECT_DIR / "data").as_posix()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The save_dir of one short run of the tests' config (TinyCNN, batch norm, dropout)."""
    save_dir = tmp_path_factory.mktemp("saved")
    options = ["-c", TEST_CONFIG, "-d", "cpu", "--set", f"trainer.save_dir={save_dir.as_posix()}"]
    assert train.main([*options, "--set", f"data_loader.args.data_dir={DATA}", "--set", "trainer.epochs=1"]) == 0
    return save_dir


def best_of(save_dir) -> str:
    return str(only_run_dir(save_dir) / "model_best.pth")


def test_digits(folder, count=None, image=False) -> dict[str, int]:
    """The test split's digits as files (.npy as digits.npz holds them, or 8x8 PNG images), one
    sub-folder per label; the label of each path."""
    with np.load(PROJECT_DIR / "data" / "digits.npz") as arrays:
        images, labels = arrays["x_test"][:count], arrays["y_test"][:count]
    truth = {}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / str(label) / f"{i:03d}.{'png' if image else 'npy'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if image:
            from PIL import Image

            Image.fromarray(np.round(pixels.astype(float) * 255 / 16).astype(np.uint8)).save(path)
        else:
            np.save(path, pixels)
        truth[str(path)] = int(label)
    return truth


test_digits.__test__ = False  # a helper, not a test


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predictions_match_the_model_and_test_py_on_the_test_split(trained, tmp_path, capsys):
    """Each of the 360 test digits, read from its own file, gets the class the model scores
    highest on the test split (same probability), so the accuracy of the CSV is test.py's; the
    batch size changes nothing."""
    truth = test_digits(tmp_path / "inputs")
    assert predict.main(["-r", best_of(trained), str(tmp_path / "inputs"), "-o", str(tmp_path / "p.csv")]) == 0
    assert predict.main(["-r", best_of(trained), str(tmp_path / "inputs"), "--bs", "7", "-d", "cpu"]) == 0
    rows = read_csv((tmp_path / "p.csv").read_text(encoding="utf-8"))
    assert capsys.readouterr().out == (tmp_path / "p.csv").read_text(encoding="utf-8")  # stdout: the same CSV
    assert [row["path"] for row in rows] == [str(path) for path in sorted(map(Path, truth))]

    checkpoint = load_checkpoint(best_of(trained))
    model = test_script.trained_model(ConfigParser(checkpoint["config"]), checkpoint, torch.device("cpu"))
    images, labels = DigitsDataLoader(DATA, batch_size=360, training=False).dataset.tensors
    with torch.no_grad():
        probabilities = model(images).softmax(dim=1)
    for row in rows:
        i = int(row["path"][-7:-4])
        assert int(row["prediction"]) == probabilities[i].argmax() and truth[row["path"]] == labels[i]
        assert float(row["probability"]) == pytest.approx(probabilities[i].max().item(), abs=1e-6)
        assert [pair.split(":")[0] for pair in (row["top1"], row["top2"], row["top3"])] == [
            str(k) for k in probabilities[i].topk(3).indices.tolist()
        ]

    assert test_script.main(["-r", best_of(trained), "-d", "cpu", "--set", f"data_loader.args.data_dir={DATA}"]) == 0
    tested = float(re.search(r"accuracy\s*:\s*([0-9.]+)", capsys.readouterr().out).group(1))
    correct = sum(int(row["prediction"]) == truth[row["path"]] for row in rows)
    assert f"{correct / 360:.6f}" == f"{tested:.6f}"


def test_digit_images_read_as_the_arrays_they_show(trained, tmp_path, capsys):
    """An 8x8 PNG, white on black, gets the prediction of the digits.npz array it was drawn from."""
    pytest.importorskip("PIL")
    test_digits(tmp_path / "arrays", count=40)
    test_digits(tmp_path / "images", count=40, image=True)
    outputs = []
    for folder in ("arrays", "images"):
        assert predict.main(["-r", best_of(trained), str(tmp_path / folder)]) == 0
        outputs.append(capsys.readouterr().out.replace(str(tmp_path / folder), "").replace(".png", ".npy"))
    assert outputs[0] == outputs[1] and len(read_csv(outputs[0])) == 40


def test_unreadable_inputs_are_named_and_skipped(trained, tmp_path, capsys):
    """A corrupt image, an array of the wrong shape and a file of another kind named explicitly
    are each named in one line on stderr; the others are predicted (exit code 0). With none
    readable, the exit code is 2 and no file is written."""
    truth = test_digits(tmp_path / "inputs", count=5)
    broken = {
        "corrupt.png": b"\x89PNG\r\n\x1a\n not really",
        "wrong-shape.npy": None,
        "notes.txt": b"a note about the digits",
    }
    for name, data in broken.items():
        if data is None:
            np.save(tmp_path / "inputs" / name, np.zeros((9, 9)))
        else:
            (tmp_path / "inputs" / name).write_bytes(data)
    out = tmp_path / "p.csv"
    args = ["-r", best_of(trained), str(tmp_path / "inputs"), str(tmp_path / "inputs" / "notes.txt"), "-o", str(out)]
    assert predict.main(args) == 0
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if line.startswith("skipped: ")]
    assert len(skipped) == 3 and all(any(name in line for line in skipped) for name in broken), err
    assert sorted(row["path"] for row in read_csv(out.read_text(encoding="utf-8"))) == sorted(truth)
    assert f"5 predictions with {best_of(trained)} in {out}; skipped 3 (named above)" in err

    none = [str(tmp_path / "inputs" / name) for name in broken]
    assert predict.main(["-r", best_of(trained), *none, "-o", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "error: no predictions: none of the 3 inputs could be read (each is named above)"
    assert not (tmp_path / "none.csv").exists() and list(tmp_path.glob(".tmp-*")) == []


def test_an_existing_output_file_is_never_overwritten(trained, tmp_path, capsys):
    test_digits(tmp_path / "inputs", count=3)
    out = tmp_path / "predictions.csv"
    out.write_text("the user's own file\n", encoding="utf-8")
    assert predict.main(["-r", best_of(trained), str(tmp_path / "inputs"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: -o {out}: the file exists and is never overwritten; choose another path or delete it\n"
    assert out.read_text(encoding="utf-8") == "the user's own file\n"


def test_missing_input_is_one_line(trained, tmp_path, capsys):
    assert predict.main(["-r", best_of(trained), str(tmp_path / "nowhere.png")]) == 2
    assert (
        capsys.readouterr().err
        == f"error: input '{tmp_path / 'nowhere.png'}' does not exist; name image files or folders of them\n"
    )


def hand_made(tmp_path, model: torch.nn.Module, *assignments: str, **entries) -> str:
    """A checkpoint of `model` with the tests' config (and `assignments`) and further `entries`."""
    path = tmp_path / "hand-made.pth"
    torch.save({"state_dict": model.state_dict(), "config": config_for_tests(*assignments), **entries}, path)
    return str(path)


def test_a_regression_model_gets_its_raw_outputs(tmp_path, capsys):
    """A model with one output per input: the CSV holds that value, as the model computes it."""
    torch.manual_seed(0)
    model = LinearNet(outputs=1)
    checkpoint = hand_made(tmp_path, model, "arch.type=tests.parts.LinearNet", 'arch.args={"outputs": 1}')
    test_digits(tmp_path / "inputs", count=6)
    assert predict.main(["-r", checkpoint, str(tmp_path / "inputs")]) == 0
    rows = read_csv(capsys.readouterr().out)
    assert list(rows[0]) == ["path", "output"] and len(rows) == 6
    images = DigitsDataLoader(DATA, batch_size=6, training=False).dataset.tensors[0]
    with torch.no_grad():
        expected = model(images[[int(row["path"][-7:-4]) for row in rows]]).flatten().tolist()
    assert [float(row["output"]) for row in rows] == pytest.approx(expected, rel=1e-6)


def test_class_names_come_from_the_checkpoint_and_top_k_is_capped(tmp_path, capsys):
    """The checkpoint's `classes` name the predictions; --top-k larger than the number of classes
    lists them all, most likely first."""
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    checkpoint = hand_made(tmp_path, LinearNet(), "arch.type=tests.parts.LinearNet", "arch.args={}", classes=names)
    test_digits(tmp_path / "inputs", count=2)
    assert predict.main(["-r", checkpoint, str(tmp_path / "inputs"), "--top-k", "50"]) == 0
    rows = read_csv(capsys.readouterr().out)
    assert list(rows[0]) == ["path", "prediction", "probability", *(f"top{i}" for i in range(1, 11))]
    for row in rows:
        ranked = [row[f"top{i}"].rsplit(":", 1) for i in range(1, 11)]
        assert sorted(name for name, _ in ranked) == sorted(names) and ranked[0][0] == row["prediction"]
        assert [float(p) for _, p in ranked] == sorted((float(p) for _, p in ranked), reverse=True)
    assert predict.main(["-r", checkpoint, str(tmp_path / "inputs"), "--top-k", "0"]) == 2
    assert capsys.readouterr().err == "error: --top-k 0: list at least 1 class\n"


def test_a_loader_without_read_input_is_told_what_to_add(trained, tmp_path, capsys):
    test_digits(tmp_path / "inputs", count=2)
    args = [
        "-r",
        best_of(trained),
        str(tmp_path / "inputs"),
        "--set",
        "data_loader.type=tests.parts.TemplateStyleDigits",
    ]
    assert predict.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "TemplateStyleDigits has no read_input method, so predict.py cannot read files for it; add a static" in err


def test_test_py_auto_evaluates_the_newest_runs_best_checkpoint(trained, tmp_path, capsys):
    """-r auto with -c: the best checkpoint of the newest run of that config, named; a run
    without one (monitor off) gives its latest; no run at all is one line."""
    config = ["-c", TEST_CONFIG, "--set", f"data_loader.args.data_dir={DATA}"]
    assert test_script.main([*config, "--set", f"trainer.save_dir={trained.as_posix()}", "-r", "auto"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Using {best_of(trained)} (the best checkpoint of the newest run)\n")
    assert f"Test results for {best_of(trained)} (epoch 1, 360 samples)" in out

    saved = f"trainer.save_dir={(tmp_path / 'saved').as_posix()}"
    assert test_script.main([*config, "--set", saved, "-r", "auto"]) == 2
    assert "--resume auto: no checkpoint under" in capsys.readouterr().err
    options = [*config, "--set", saved, "--set", "trainer.monitor=off", "--set", "trainer.epochs=1", "-d", "cpu"]
    assert train.main(options) == 0
    capsys.readouterr()
    assert test_script.main([*options, "-r", "auto"]) == 0
    latest = only_run_dir(tmp_path / "saved") / "checkpoint-epoch1.pth"
    assert capsys.readouterr().out.startswith(f"Using {latest} (the latest checkpoint of the newest run)\n")


def test_test_py_builds_no_optimizer_and_prints_no_model(trained, capsys):
    """Evaluating builds the model and the data alone: an optimizer setting that could not be
    built here does not matter, and the log does not print the model's layers."""
    options = ["-r", best_of(trained), "-d", "cpu", "--set", f"data_loader.args.data_dir={DATA}"]
    assert test_script.main([*options, "--set", "optimizer.args.weight_decay=-1"]) == 0
    out = capsys.readouterr().out
    assert "Test results for" in out and "TinyCNN(" not in out and "Conv2d" not in out


@pytest.mark.slow
def test_predict_py_runs_as_a_script(trained, tmp_path):
    """As a user runs it: CSV on stdout, messages on stderr; -o writes the same CSV."""
    test_digits(tmp_path / "inputs", count=20)
    (tmp_path / "inputs" / "notes.txt").write_text("not a digit", encoding="utf-8")
    result = run_script("predict.py", "-r", best_of(trained), str(tmp_path / "inputs"), "-d", "cpu")
    assert result.returncode == 0, result.stderr
    assert len(read_csv(result.stdout)) == 20 and "skipped: " in result.stderr and "notes.txt" in result.stderr
    written = run_script("predict.py", "-r", best_of(trained), str(tmp_path / "inputs"), "-o", str(tmp_path / "p.csv"))
    assert written.returncode == 0 and written.stdout == ""
    assert (tmp_path / "p.csv").read_text(encoding="utf-8") == result.stdout
