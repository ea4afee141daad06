"""Your own images (projects made with the image_folder dataset option): one sub-folder per
class, real image files, the usual transforms, and clear errors for a wrong layout."""

import re

import pytest
import torch

from data_loader.image_folder import ImageFolderDataLoader
from tests.helpers import run_script, shipped_config
from tests.test_training import only_run_dir
from utils.errors import DataError


def test_class_folders_become_labels_and_images_are_resized(tmp_path):
    """Sub-folder names, sorted, are the classes; every image comes out as 3 x size x size."""
    ImageFolderDataLoader.write_sample(tmp_path, per_class=10, size=20)
    loader = ImageFolderDataLoader(str(tmp_path), batch_size=6, image_size=16, validation_split=0.2)
    assert loader.classes == ["circle", "square", "triangle"]
    assert (loader.num_samples, len(loader.valid_indices)) == (24, 6)
    images, labels = next(iter(loader))
    assert images.shape == (6, 3, 16, 16) and set(labels.tolist()) <= {0, 1, 2}
    test = ImageFolderDataLoader(str(tmp_path), batch_size=100, image_size=16, training=False)
    assert test.num_samples == 15


def test_validation_images_are_not_augmented(tmp_path):
    """Validation batches are the same from epoch to epoch (no random crops or flips)."""
    ImageFolderDataLoader.write_sample(tmp_path, per_class=10)
    valid = ImageFolderDataLoader(str(tmp_path), batch_size=30, image_size=16, validation_split=0.2).split_validation()
    first = next(iter(valid))[0]
    valid.set_epoch(2)
    assert torch.equal(first, next(iter(valid))[0])


def test_shipped_config_trains_and_tests_on_a_folder_of_images(tmp_path):
    """The project's own config trains on a generated folder of PNG files; test.py evaluates it."""
    ImageFolderDataLoader.write_sample(tmp_path / "images")
    overrides = ["--set", f"data_loader.args.data_dir={(tmp_path / 'images').as_posix()}"]
    save = ["--set", f"trainer.save_dir={(tmp_path / 'saved').as_posix()}", "--set", "trainer.epochs=2"]
    trained = run_script("train.py", "-c", shipped_config(), *overrides, *save)
    assert trained.returncode == 0, trained.stderr
    tested = run_script("test.py", "-r", str(only_run_dir(tmp_path / "saved") / "model_best.pth"), *overrides)
    assert tested.returncode == 0, tested.stderr
    assert re.search(r"accuracy\s*:\s*[0-9.]+", tested.stdout)


def test_wrong_number_of_classes_names_the_config_key(tmp_path):
    ImageFolderDataLoader.write_sample(tmp_path / "images")
    result = run_script(
        "train.py", "-c", shipped_config(), "--set", f"data_loader.args.data_dir={(tmp_path / 'images').as_posix()}",
        "--set", "arch.args.num_classes=5", "--set", f"trainer.save_dir={tmp_path.as_posix()}/saved",
    )  # fmt: skip
    assert result.returncode == 2
    expected = "'arch.args.num_classes' is 5 but the data has 3 classes (circle, square, triangle); set it to 3"
    assert expected in result.stderr
    assert not (tmp_path / "saved").exists()


def test_empty_folder_says_how_to_lay_out_the_images(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    result = run_script(
        "train.py", "-c", shipped_config(), "--set", f"data_loader.args.data_dir={(tmp_path / 'images').as_posix()}",
        "--set", f"trainer.save_dir={tmp_path.as_posix()}/saved",
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"no images in {(tmp_path / 'images' / 'train').absolute()}: put them in one sub-folder per class" in (
        result.stderr
    )


def test_test_split_keeps_the_training_labels(tmp_path):
    """Labels come from train/'s class folders: a test/ folder lacking a class still numbers the
    others as training did, and a class that train/ lacks is refused in one line."""
    ImageFolderDataLoader.write_sample(tmp_path, per_class=4)
    for path in (tmp_path / "test" / "circle").iterdir():
        path.unlink()
    (tmp_path / "test" / "circle").rmdir()
    test = ImageFolderDataLoader(str(tmp_path), batch_size=100, image_size=16, training=False)
    assert test.classes == ["circle", "square", "triangle"]
    assert sorted(set(next(iter(test))[1].tolist())) == [1, 2]
    (tmp_path / "test" / "zebra").mkdir()
    with pytest.raises(DataError, match="has class folders that train/ lacks: zebra; every class needs training"):
        ImageFolderDataLoader(str(tmp_path), batch_size=100, image_size=16, training=False)


def test_test_py_checks_the_classes_the_checkpoint_was_trained_on(tmp_path):
    """test.py works with test/ alone (train/ elsewhere), and refuses test data whose classes differ
    from the checkpoint's, in one line; a test/ with class folders but no images is named too."""
    images = tmp_path / "images"
    ImageFolderDataLoader.write_sample(images, per_class=6)
    data = ["--set", f"data_loader.args.data_dir={images.as_posix()}"]
    trained = run_script(
        "train.py", "-c", shipped_config(), *data, "--set", "trainer.epochs=1",
        "--set", "data_loader.args.num_workers=0", "--set", f"trainer.save_dir={(tmp_path / 'saved').as_posix()}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    best = str(only_run_dir(tmp_path / "saved") / "model_best.pth")
    for path in sorted((images / "train").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (images / "train").rmdir()
    alone = run_script("test.py", "-r", best, *data)
    assert alone.returncode == 0, alone.stderr
    (images / "test" / "square").rename(images / "test" / "star")
    renamed = run_script("test.py", "-r", best, *data)
    assert renamed.returncode == 2 and renamed.stderr.count("\n") == 1
    expected = "trained on the classes circle, square, triangle, but the test data has circle, star, triangle"
    assert expected in renamed.stderr
    for path in (images / "test").rglob("*.png"):
        path.unlink()
    empty = run_script("test.py", "-r", best, *data)
    assert empty.returncode == 2 and f"no images in {(images / 'test').absolute()}" in empty.stderr


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_is_named_in_one_line(tmp_path, workers):
    """A file that is not an image stops training with one line naming it (exit 2), also when
    it is read in a worker process."""
    ImageFolderDataLoader.write_sample(tmp_path / "images")
    broken = tmp_path / "images" / "train" / "circle" / "broken.png"
    broken.write_text("not an image", encoding="utf-8")
    result = run_script(
        "train.py", "-c", shipped_config(), "--set", f"data_loader.args.data_dir={(tmp_path / 'images').as_posix()}",
        "--set", f"data_loader.args.num_workers={workers}", "--set", "data_loader.args.validation_split=0.0",
        "--set", "trainer.monitor=off", "--set", f"trainer.save_dir={tmp_path.as_posix()}/saved",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"error: cannot read image {broken}" in result.stderr
    assert "replace or remove the file" in result.stderr
