"""MNIST (projects made with the mnist dataset option): read from files put in place by hand,
and a clear error, naming the folder, when they are missing and cannot be downloaded."""

import csv
import gzip
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets import MNIST

import export
import predict
import test as test_script
import train
from data_loader.mnist import FILES, MnistDataLoader
from parse_config import ConfigParser
from tests.helpers import PROJECT_DIR, assert_outputs_of_model, only_run_dir, run_exported, shipped_config
from utils.checkpoint import load_checkpoint
from utils.errors import DataError


def test_files_placed_by_hand_are_read_without_a_download(tmp_path):
    """Files in <data_dir>/MNIST/raw (MNIST's own IDX format) load as normalised 28x28 tensors."""
    MnistDataLoader.write_sample(tmp_path, train=40, test=20)
    train = MnistDataLoader(str(tmp_path), batch_size=8, validation_split=0.25, download=False)
    test = MnistDataLoader(str(tmp_path), batch_size=8, training=False, download=False)
    assert (train.n_samples, len(train.valid_indices), test.n_samples) == (30, 10, 20)
    images, labels = next(iter(train))
    assert images.shape == (8, 1, 28, 28) and labels.dtype.is_floating_point is False
    assert sorted(set(next(iter(test.all_samples()))[1].tolist())) == list(range(8))


def test_gzipped_files_work_without_a_download(tmp_path):
    """The .gz files as published are unpacked next to themselves; no network is needed."""
    MnistDataLoader.write_sample(tmp_path, train=20, test=10)
    raw = tmp_path / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    loader = MnistDataLoader(str(tmp_path), batch_size=8, download=False)
    assert loader.n_samples == 20
    assert sorted(p.name for p in raw.iterdir() if not p.name.endswith(".gz")) == sorted(FILES)


def test_truncated_gz_file_is_named_and_leaves_nothing_behind(tmp_path):
    """A .gz cut short (an interrupted download) is named, with what to do; no partial file stays."""
    MnistDataLoader.write_sample(tmp_path, train=20, test=10)
    raw = tmp_path / "MNIST" / "raw"
    packed = raw / f"{FILES[0]}.gz"
    packed.write_bytes(gzip.compress((raw / FILES[0]).read_bytes())[:300])
    (raw / FILES[0]).unlink()
    with pytest.raises(DataError, match=re.escape(f"cannot unpack {packed.absolute()} (")) as caught:
        MnistDataLoader(str(tmp_path), batch_size=8, download=False)
    assert "delete it and run again to download it" in str(caught.value)
    assert sorted(p.name for p in raw.iterdir()) == sorted([*FILES[1:], packed.name])


def test_damaged_files_are_named_in_one_line(tmp_path):
    MnistDataLoader.write_sample(tmp_path, train=20, test=10)
    (tmp_path / "MNIST" / "raw" / FILES[0]).write_text("<html>Not Found</html>", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape("are damaged (not in MNIST's IDX format); delete them")):
        MnistDataLoader(str(tmp_path), batch_size=8, download=False)


def shipped(data_dir, tmp_path, *assignments: str) -> list[str]:
    """train.py options: the project's own config on MNIST files under data_dir, saving in tmp_path/saved."""
    sets = [f"data_loader.args.data_dir={data_dir.as_posix()}", f"trainer.save_dir={(tmp_path / 'saved').as_posix()}"]
    return ["-c", str(PROJECT_DIR / shipped_config()), *(arg for a in [*sets, *assignments] for arg in ("--set", a))]


def test_model_outputs_must_match_the_ten_digits(tmp_path, capsys):
    MnistDataLoader.write_sample(tmp_path)
    assert train.main(shipped(tmp_path, tmp_path, "arch.args.num_classes=5")) == 2
    expected = "'arch.args.num_classes' is 5 but the data has 10 classes (0, 1, 2, 3, 4, ...); set it to 10"
    assert expected in capsys.readouterr().err


def test_shipped_config_trains_and_tests_on_placed_files(tmp_path, capsys):
    """The project's own config trains on files put in data/MNIST/raw, and test.py evaluates it."""
    MnistDataLoader.write_sample(tmp_path / "data")
    assert train.main([*shipped(tmp_path / "data", tmp_path, "trainer.epochs=2"), "-d", "cpu"]) == 0
    assert "epoch 2/2" in capsys.readouterr().out
    best = str(only_run_dir(tmp_path / "saved") / "model_best.pth")
    assert (
        test_script.main(
            ["-r", best, "-d", "cpu", "--set", f"data_loader.args.data_dir={(tmp_path / 'data').as_posix()}"]
        )
        == 0
    )
    assert re.search(r"accuracy\s*:\s*[0-9.]+", capsys.readouterr().out)


def test_missing_files_without_download_name_the_folder_in_one_line(tmp_path, capsys):
    assert train.main(shipped(tmp_path, tmp_path, "data_loader.args.download=false")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"MNIST files are missing from {(tmp_path / 'MNIST' / 'raw').absolute()}" in err
    assert "download is false; put train-images-idx3-ubyte" in err


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    """Offline, the download fails; the error gives the folder and the file names to put there."""
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # a closed port: fails at once
    with pytest.raises(DataError) as caught:
        MnistDataLoader(str(tmp_path), batch_size=8)
    message = str(caught.value)
    assert "the download failed" in message and str((tmp_path / "MNIST" / "raw").absolute()) in message
    assert all(name in message for name in FILES) and "\n" not in message


@pytest.mark.slow
def test_exported_mnist_model_runs_without_the_project(tmp_path, capsys):
    """A model trained by the project's own config exports to a .pt2 file that runs, without the
    project, at any batch size of 28x28 images, with the model's outputs and the ten class names."""
    MnistDataLoader.write_sample(tmp_path / "data")
    assert train.main([*shipped(tmp_path / "data", tmp_path, "trainer.epochs=1"), "-d", "cpu"]) == 0
    best = only_run_dir(tmp_path / "saved") / "model_best.pth"
    assert export.main(["-r", str(best), "--set", f"data_loader.args.data_dir={(tmp_path / 'data').as_posix()}"]) == 0
    assert f"Wrote {best.with_suffix('.pt2')}" in capsys.readouterr().out
    images = next(iter(MnistDataLoader(str(tmp_path / "data"), batch_size=32, training=False, download=False)))[0]
    outputs, metadata = run_exported(best.with_suffix(".pt2"), [images, images[:3]], tmp_path)
    assert_outputs_of_model(outputs, best, [images, images[:3]])
    digits = [str(digit) for digit in range(10)]
    assert metadata == {"classes": digits, "input_shape": [None, 1, 28, 28], "input_dtype": "float32"}


def test_predict_reads_image_files_as_the_test_split_is_read(tmp_path, capsys):
    """The test images saved as 28x28 PNG files each get the class the model scores highest on
    the test split, so the accuracy of predict.py's CSV is test.py's; an image of another size is
    named and skipped."""
    MnistDataLoader.write_sample(tmp_path / "data")
    assert train.main([*shipped(tmp_path / "data", tmp_path, "trainer.epochs=1"), "-d", "cpu"]) == 0
    best = str(only_run_dir(tmp_path / "saved") / "model_best.pth")
    test_split = MNIST(str(tmp_path / "data"), train=False)
    for i, (pixels, label) in enumerate(zip(test_split.data, test_split.targets.tolist(), strict=True)):
        (tmp_path / "inputs" / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.numpy()).save(tmp_path / "inputs" / str(label) / f"{i:03d}.png")
    Image.new("L", (20, 20)).save(tmp_path / "inputs" / "small.png")
    assert predict.main(["-r", best, str(tmp_path / "inputs"), "-o", str(tmp_path / "p.csv"), "-d", "cpu"]) == 0
    assert (
        f"skipped: {tmp_path / 'inputs' / 'small.png'} is 20x20 pixels; MNIST's images are 28x28"
        in capsys.readouterr().err
    )
    rows = list(csv.DictReader((tmp_path / "p.csv").open(encoding="utf-8")))

    checkpoint = load_checkpoint(best)
    model = test_script.trained_model(ConfigParser(checkpoint["config"]), checkpoint, torch.device("cpu"))
    images, labels = MnistDataLoader(str(tmp_path / "data"), 32, training=False, download=False).dataset.tensors
    with torch.no_grad():
        scores = model(images)
    assert len(rows) == len(labels) == 32
    for row in rows:
        i = int(row["path"][-7:-4])
        assert (int(row["prediction"]), int(Path(row["path"]).parent.name)) == (scores[i].argmax(), labels[i])

    data = ["--set", f"data_loader.args.data_dir={(tmp_path / 'data').as_posix()}"]
    assert test_script.main(["-r", best, "-d", "cpu", *data]) == 0
    tested = float(re.search(r"accuracy\s*:\s*([0-9.]+)", capsys.readouterr().out).group(1))
    correct = sum(row["prediction"] == Path(row["path"]).parent.name for row in rows)
    assert f"{correct / 32:.6f}" == f"{tested:.6f}"
