"""MNIST (projects made with the mnist dataset option): read from files put in place by hand,
and a clear error, naming the folder, when they are missing and cannot be downloaded."""

import re

import pytest
from torchvision.datasets import MNIST

from data_loader.mnist import FILES, MnistDataLoader
from tests.helpers import run_script, shipped_config
from tests.test_training import only_run_dir


def test_files_placed_by_hand_are_read_without_a_download(tmp_path):
    """Files in <data_dir>/MNIST/raw (MNIST's own IDX format) load as normalised 28x28 tensors."""
    MnistDataLoader.write_sample(tmp_path, train=40, test=20)
    train = MnistDataLoader(str(tmp_path), batch_size=8, validation_split=0.25, download=False)
    test = MnistDataLoader(str(tmp_path), batch_size=8, training=False, download=False)
    assert (train.num_samples, len(train.valid_indices), test.num_samples) == (30, 10, 20)
    images, labels = next(iter(train))
    assert images.shape == (8, 1, 28, 28) and labels.dtype.is_floating_point is False
    assert sorted(set(next(iter(test))[1].tolist())) == list(range(8))


def test_shipped_config_trains_and_tests_on_placed_files(tmp_path):
    """The project's own config trains on files put in data/MNIST/raw, and test.py evaluates it."""
    MnistDataLoader.write_sample(tmp_path / "data")
    overrides = ["--set", f"data_loader.args.data_dir={(tmp_path / 'data').as_posix()}"]
    save = ["--set", f"trainer.save_dir={(tmp_path / 'saved').as_posix()}", "--set", "trainer.epochs=2"]
    trained = run_script("train.py", "-c", shipped_config(), *overrides, *save)
    assert trained.returncode == 0, trained.stderr
    assert "epoch 2/2" in trained.stdout
    tested = run_script("test.py", "-r", str(only_run_dir(tmp_path / "saved") / "model_best.pth"), *overrides)
    assert tested.returncode == 0, tested.stderr
    assert re.search(r"accuracy\s*:\s*[0-9.]+", tested.stdout)


def test_missing_files_without_download_name_the_folder_in_one_line(tmp_path):
    result = run_script(
        "train.py", "-c", shipped_config(), "--set", f"data_loader.args.data_dir={tmp_path.as_posix()}",
        "--set", "data_loader.args.download=false", "--set", f"trainer.save_dir={tmp_path.as_posix()}/saved",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"MNIST files are missing from {(tmp_path / 'MNIST' / 'raw').absolute()}" in result.stderr
    assert "download is false; put train-images-idx3-ubyte" in result.stderr


def test_failed_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    """Offline, the download fails; the error gives the folder and the file names to put there."""
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # a closed port: fails at once
    with pytest.raises(FileNotFoundError) as caught:
        MnistDataLoader(str(tmp_path), batch_size=8)
    message = str(caught.value)
    assert "the download failed" in message and str((tmp_path / "MNIST" / "raw").absolute()) in message
    assert all(name in message for name in FILES) and "\n" not in message
