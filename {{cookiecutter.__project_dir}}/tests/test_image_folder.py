"""Your own images (projects made with the image_folder dataset option): one sub-folder per
class, real image files, the usual transforms, and clear errors for a wrong layout."""

import csv
import os
import re
import signal

import pytest
import torch

import export
import predict
import test as test_script
import train
from data_loader.image_folder import ImageFolderDataLoader
from parse_config import ConfigParser, load_config
from tests.helpers import (
    PROJECT_DIR,
    assert_outputs_of_model,
    finish,
    only_run_dir,
    read_until,
    run_exported,
    run_script,
    same_weights,
    shipped_config,
    signal_at_loss_call,
    start_script,
)
from utils.checkpoint import load_checkpoint
from utils.errors import DataError
from utils.runtime import Interrupted


@pytest.fixture(autouse=True)
def in_project_dir(monkeypatch):
    monkeypatch.chdir(PROJECT_DIR)


def sample(folder, **sizes) -> list[str]:
    """Sample images of as many classes as the project's config sets (README: arch.args.num_classes
    is the number of class folders, so a user's edit of it must not break these tests); their names."""
    classes = load_config(PROJECT_DIR / shipped_config())["arch"].get("args", {}).get("num_classes", 3)
    ImageFolderDataLoader.write_sample(folder, num_classes=classes, **sizes)
    return sorted(path.name for path in (folder / "train").iterdir())


def shipped(tmp_path, *assignments: str) -> list[str]:
    """train.py options: the project's own config on images in tmp_path/images, saving in tmp_path/saved."""
    sets = [
        f"data_loader.args.data_dir={(tmp_path / 'images').as_posix()}",
        f"trainer.save_dir={(tmp_path / 'saved').as_posix()}",
    ]
    return ["-c", shipped_config(), *(arg for a in [*sets, *assignments] for arg in ("--set", a))]


def test_class_folders_become_labels_and_images_are_resized(tmp_path):
    """Sub-folder names, sorted, are the classes; every image comes out as 3 x size x size."""
    ImageFolderDataLoader.write_sample(tmp_path, per_class=10, size=20)
    loader = ImageFolderDataLoader(str(tmp_path), batch_size=6, image_size=16, validation_split=0.2)
    assert loader.classes == ["circle", "square", "triangle"]
    assert (loader.n_samples, len(loader.valid_indices)) == (24, 6)
    images, labels = next(iter(loader))
    assert images.shape == (6, 3, 16, 16) and set(labels.tolist()) <= {0, 1, 2}
    assert ImageFolderDataLoader(str(tmp_path), batch_size=100, image_size=16, training=False).n_samples == 15


def test_validation_images_are_not_augmented(tmp_path):
    """Validation batches are the same from epoch to epoch (no random crops or flips)."""
    ImageFolderDataLoader.write_sample(tmp_path, per_class=10)
    valid = ImageFolderDataLoader(str(tmp_path), batch_size=30, image_size=16, validation_split=0.2).split_validation()
    first = next(iter(valid))[0]
    valid.batch_sampler.set_epoch(2)
    assert torch.equal(first, next(iter(valid))[0])


def test_shipped_config_trains_and_tests_on_a_folder_of_images(tmp_path, capsys):
    """The project's own config trains on a folder of PNG files (worker processes decode them);
    test.py evaluates the whole test folder."""
    classes = sample(tmp_path / "images")
    assert train.main([*shipped(tmp_path, "trainer.epochs=2"), "-d", "cpu"]) == 0
    best = str(only_run_dir(tmp_path / "saved") / "model_best.pth")
    assert test_script.main(["-r", best, "-d", "cpu"]) == 0
    assert f"{6 * len(classes)} samples" in capsys.readouterr().out


def test_verbosity_2_logs_no_library_debug_lines(tmp_path, capsys):
    """Every step's loss, but none of PIL's debug lines for every image it reads."""
    sample(tmp_path / "images")
    options = shipped(tmp_path, "trainer.epochs=1", "trainer.verbosity=2", "data_loader.args.num_workers=0")
    assert train.main([*options, "-d", "cpu"]) == 0
    log = (only_run_dir(tmp_path / "saved") / "train.log").read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert "step 1 loss" in out and "step 1 loss" in log and "STREAM" not in out + log


def test_smoke_sample_and_training_follow_the_configs_number_of_classes(tmp_path, capsys):
    """With 4 class folders and num_classes 4, the smoke run's generated sample has 4 classes too."""
    ImageFolderDataLoader.write_sample(tmp_path / "images", num_classes=4)
    assert train.main([*shipped(tmp_path, "arch.args.num_classes=4"), "--smoke", "-d", "cpu"]) == 0
    assert "Smoke run passed" in capsys.readouterr().out
    assert train.main([*shipped(tmp_path, "arch.args.num_classes=4", "trainer.epochs=1"), "-d", "cpu"]) == 0


def test_wrong_number_of_classes_names_the_config_key(tmp_path, capsys):
    ImageFolderDataLoader.write_sample(tmp_path / "images")
    assert train.main(shipped(tmp_path, "arch.args.num_classes=5")) == 2
    err = capsys.readouterr().err
    assert "'arch.args.num_classes' is 5 but the data has 3 classes (circle, square, triangle); set it to 3 if" in err
    assert "if those are all your classes, else check the data (config key 'data_loader')" in err
    assert not (tmp_path / "saved").exists()


def test_empty_folder_says_how_to_lay_out_the_images(tmp_path, capsys):
    (tmp_path / "images" / "train").mkdir(parents=True)
    assert train.main(shipped(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no images in {(tmp_path / 'images' / 'train').absolute()}: put them in one sub-folder per class" in err


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


def test_test_py_checks_the_classes_the_checkpoint_was_trained_on(tmp_path, capsys):
    """test.py works with test/ alone (train/ elsewhere), and refuses test data whose classes differ
    from the checkpoint's, in one line; a test/ with class folders but no images is named too."""
    images = tmp_path / "images"
    classes = sample(images, per_class=6)
    assert train.main(shipped(tmp_path, "trainer.epochs=1", "data_loader.args.num_workers=0")) == 0
    best = str(only_run_dir(tmp_path / "saved") / "model_best.pth")
    for path in sorted((images / "train").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (images / "train").rmdir()
    assert test_script.main(["-r", best]) == 0
    (images / "test" / classes[-1]).rename(images / "test" / "zebra")
    capsys.readouterr()
    assert test_script.main(["-r", best]) == 2
    expected = (
        f"trained on the classes {', '.join(classes)}, but the test data has {', '.join([*classes[:-1], 'zebra'])}"
    )
    assert expected in capsys.readouterr().err
    for path in (images / "test").rglob("*.png"):
        path.unlink()
    assert test_script.main(["-r", best]) == 2
    assert f"no images in {(images / 'test').absolute()}" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_is_named_in_one_line(tmp_path, capsys, workers):
    """A file that is not an image stops training with one line naming it (exit 2), also when
    it is read in a worker process."""
    sample(tmp_path / "images")
    broken = tmp_path / "images" / "train" / "circle" / "broken.png"
    broken.write_text("not an image", encoding="utf-8")
    options = [
        f"data_loader.args.num_workers={workers}",
        "data_loader.args.validation_split=0.0",
        "trainer.monitor=off",
    ]
    assert train.main(shipped(tmp_path, *options)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: cannot read image {broken}" in err and "replace or remove the file" in err


def test_shipped_config_names_the_image_folder_loader():
    assert load_config(PROJECT_DIR / shipped_config())["data_loader"]["type"] == "ImageFolderDataLoader"


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [pytest.param(1, id="first-batch"), pytest.param(3, id="last-batch")])
def test_shipped_config_resumes_bit_identically_with_augmenting_workers(tmp_path, stop_at):
    """The shipped config (random crops and flips in 2 worker processes), stopped by SIGTERM at
    the first or the last batch of an epoch, resumes to the uninterrupted run's exact weights."""
    ImageFolderDataLoader.write_sample(tmp_path / "images")  # 32 training images: batches of 12, 12 and 8
    config = ConfigParser.from_args(train.parse_args(shipped(tmp_path, "trainer.epochs=2", "arch.args.num_classes=3")))
    config["data_loader"]["args"]["batch_size"] = 12
    runs = []
    for stop in (None, stop_at):
        torch.manual_seed(config["seed"])
        trainer = train.build(config, torch.device("cpu"))
        if stop is not None:
            signal_at_loss_call(trainer, stop)
            with pytest.raises(Interrupted):
                trainer.train(tmp_path / "stopped")
            (checkpoint,) = (tmp_path / "stopped").glob("checkpoint-epoch*-step*.pth")
            torch.manual_seed(config["seed"])
            trainer = train.build(config, torch.device("cpu"))
            trainer.load_state_dict(load_checkpoint(checkpoint))
        trainer.train(tmp_path / str(stop))
        runs.append(trainer.raw_model.state_dict())
    assert same_weights(*runs)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs POSIX process groups")
def test_sigterm_to_the_process_group_with_workers_saves_and_resumes(tmp_path):
    """A batch scheduler signals the whole process group, DataLoader workers included: the run
    still saves, exits 143 without a traceback, and resumes with -r auto."""
    sample(tmp_path / "images")
    args = [*shipped(tmp_path, "data_loader.args.batch_size=4"), "-d", "cpu"]
    process = start_script(
        "train.py", *args, "--set", "trainer.epochs=1000", "--set", "trainer.verbosity=2", group=True
    )
    read_until(process, "step 3 loss")
    os.killpg(process.pid, signal.SIGTERM)
    output = finish(process, timeout=60)
    assert process.returncode == 143 and "Traceback" not in output, output
    resumed = run_script("train.py", *args, "--set", "trainer.epochs=2", "-r", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "samples into epoch 1" in resumed.stdout


@pytest.mark.slow
def test_exported_image_model_runs_without_the_project(tmp_path, capsys):
    """A model trained by the project's own config exports to a .pt2 file that runs, without the
    project, at any batch size of images of the configured size, with the model's outputs; it
    records the class folders' names."""
    classes = sample(tmp_path / "images")
    assert train.main([*shipped(tmp_path, "trainer.epochs=1"), "-d", "cpu"]) == 0
    best = only_run_dir(tmp_path / "saved") / "model_best.pth"
    assert export.main(["-r", str(best)]) == 0
    assert f"Wrote {best.with_suffix('.pt2')}" in capsys.readouterr().out
    size = load_config(PROJECT_DIR / shipped_config())["data_loader"]["args"]["image_size"]
    test_images = ImageFolderDataLoader(str(tmp_path / "images"), batch_size=8, image_size=size, training=False)
    images = next(iter(test_images))[0]
    outputs, metadata = run_exported(best.with_suffix(".pt2"), [images, images[:3]], tmp_path)
    assert_outputs_of_model(outputs, best, [images, images[:3]])
    assert metadata == {"classes": classes, "input_shape": [None, 3, size, size], "input_dtype": "float32"}


def test_predict_reads_images_as_test_py_does(tmp_path, capsys):
    """Every image of test/ (a folder searched recursively) gets the class the model scores
    highest when test.py reads it (resized and centre-cropped, not augmented), so the accuracy of
    predict.py's CSV is test.py's; a file that is not an image is named and skipped."""
    classes = sample(tmp_path / "images")
    assert train.main([*shipped(tmp_path, "trainer.epochs=1", "data_loader.args.num_workers=0"), "-d", "cpu"]) == 0
    best = str(only_run_dir(tmp_path / "saved") / "model_best.pth")
    test_folder = tmp_path / "images" / "test"
    (test_folder / classes[0] / "broken.jpg").write_text("not an image", encoding="utf-8")
    assert predict.main(["-r", best, str(test_folder), "-o", str(tmp_path / "p.csv"), "--top-k", "2"]) == 0
    assert f"skipped: cannot read image {test_folder / classes[0] / 'broken.jpg'}" in capsys.readouterr().err
    (test_folder / classes[0] / "broken.jpg").unlink()
    rows = {row["path"]: row for row in csv.DictReader((tmp_path / "p.csv").open(encoding="utf-8"))}

    checkpoint = load_checkpoint(best)
    model = test_script.trained_model(ConfigParser(checkpoint["config"]), checkpoint, torch.device("cpu"))
    loader = ImageFolderDataLoader(str(tmp_path / "images"), batch_size=1000, training=False)
    images, labels = next(iter(loader.all_samples()))
    with torch.no_grad():
        probabilities = model(images).softmax(dim=1)
    assert len(rows) == len(loader.dataset.samples) == 6 * len(classes)
    for (path, label), p, target in zip(loader.dataset.samples, probabilities, labels.tolist(), strict=True):
        row = rows[path]
        assert (row["prediction"], row["top1"].split(":")[0]) == (classes[p.argmax()], classes[p.argmax()])
        assert float(row["probability"]) == pytest.approx(p.max().item(), abs=1e-6) and label == target
        assert "top3" not in row

    assert test_script.main(["-r", best, "-d", "cpu"]) == 0
    tested = float(re.search(r"accuracy\s*:\s*([0-9.]+)", capsys.readouterr().out).group(1))
    correct = sum(row["prediction"] == os.path.basename(os.path.dirname(path)) for path, row in rows.items())
    assert f"{correct / len(rows):.6f}" == f"{tested:.6f}"
