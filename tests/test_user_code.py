"""Slow tier: a generated project takes the user's own code as the README tells them to write it:
their model in a file of its own, any nn.Module, a torchvision model by its dotted path, their
data loader, a pytorch-template project brought over, and their bugs shown with a traceback."""

import json
import shutil
import sys
import textwrap

import numpy as np
import pytest

from helpers import REPO, run

pytestmark = pytest.mark.slow
PORTED = REPO / "tests" / "ported_project"


@pytest.fixture
def project(default_project, tmp_path):
    """A fresh copy of the default project (digits), for one test to change."""
    return shutil.copytree(default_project, tmp_path / "my_project")


def python(project, *args, timeout=300):
    return run([sys.executable, *args], cwd=project, timeout=timeout)


def write(project, relative, text):
    path = project / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def write_idx_files(raw, train=256, test=64):
    """MNIST's four files in its IDX format: random 28x28 images, labels 0..9."""
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for kind, magic, array in (("images-idx3", 0x0803, images), ("labels-idx1", 0x0801, labels)):
            header = b"".join(int(n).to_bytes(4, "big") for n in (magic, *array.shape))
            (raw / f"{split}-{kind}-ubyte").write_bytes(header + array.tobytes())


def test_a_pytorch_template_style_project_runs_with_no_edits(project):
    """pytorch-template's example style (a BaseModel with log_softmax, nll_loss, metrics returning
    numbers, a loader subclass over torchvision's MNIST with worker processes, a config with
    n_gpu) trains and evaluates as it is; test.py scores every test sample although the loader
    applies validation_split to the test split; with the example's tests removed, as the README
    says, the project's own tests still pass."""
    for path in PORTED.rglob("*.py"):
        shutil.copy(path, project / path.relative_to(PORTED))
    shutil.copy(PORTED / "config.json", project / "config.json")
    write_idx_files(project / "data" / "MNIST" / "raw")
    trained = python(project, "train.py", "-c", "config.json")
    assert trained.returncode == 0, trained.stdout[-3000:]
    assert "epoch 2/2" in trained.stdout
    assert "val_accuracy" in trained.stdout
    (best,) = project.glob("saved/Ported_DigitNet/*/model_best.pth")
    tested = python(project, "test.py", "-r", str(best))
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "64 samples" in tested.stdout
    (project / "tests" / "test_example.py").unlink()
    own_tests = python(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", timeout=600)
    assert own_tests.returncode == 0, own_tests.stdout[-4000:]


def test_own_model_file_any_module_and_own_data_loader(project):
    """A model in model/resnet.py that is a plain nn.Module, and a data loader in its own file of
    data_loader/, both named by their class names, train together in the smoke run."""
    write(
        project,
        "model/resnet.py",
        """
        from torch import nn


        class Block(nn.Module):
            def __init__(self, channels):
                super().__init__()
                self.conv = nn.Conv2d(channels, channels, 3, padding=1)
                self.norm = nn.BatchNorm2d(channels)

            def forward(self, x):
                return x + self.norm(self.conv(x)).relu()


        class TinyResNet(nn.Module):
            def __init__(self, num_classes=10, channels=16):
                super().__init__()
                self.num_classes = num_classes
                self.stem = nn.Conv2d(1, channels, 3, padding=1)
                self.blocks = nn.Sequential(Block(channels), Block(channels))
                self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))

            def forward(self, x):
                return self.head(self.blocks(self.stem(x)))
        """,
    )
    write(
        project,
        "data_loader/my_data.py",
        """
        from pathlib import Path

        import numpy as np
        import torch
        from torch.utils.data import Dataset

        from base import BaseDataLoader


        class NpzDigits(Dataset):
            def __init__(self, data_dir, train):
                split = "train" if train else "test"
                with np.load(Path(data_dir) / "digits.npz") as arrays:
                    self.x = torch.from_numpy(arrays[f"x_{split}"]).float().unsqueeze(1) / 16
                    self.y = torch.from_numpy(arrays[f"y_{split}"]).long()

            def __len__(self):
                return len(self.y)

            def __getitem__(self, i):
                return self.x[i], self.y[i]


        class MyDataLoader(BaseDataLoader):
            def __init__(self, data_dir, batch_size, shuffle=True, validation_split=0.0, num_workers=0, training=True):
                super().__init__(NpzDigits(data_dir, training), batch_size, shuffle, validation_split, num_workers)
        """,
    )
    sets = ["arch.type=TinyResNet", 'arch.args={"num_classes": 10}', "data_loader.type=MyDataLoader"]
    sets += ["trainer.epochs=1", "trainer.save_dir=saved"]
    args = [arg for assignment in sets for arg in ("--set", assignment)]
    trained = python(project, "train.py", "-c", "config.json", *args)
    assert trained.returncode == 0, trained.stdout[-3000:]
    assert "Built TinyResNet from config key 'arch'" in trained.stdout
    (checkpoint,) = project.glob("saved/Digits/*/checkpoint-epoch1.pth")
    tested = python(project, "test.py", "-r", str(checkpoint))
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert "360 samples" in tested.stdout


def test_a_bug_in_the_users_model_keeps_its_traceback(project):
    """A NameError in the user's model constructor is shown with its traceback, pointing at their
    file and line, not turned into a one-line config error."""
    write(
        project,
        "model/broken.py",
        """
        from torch import nn


        class Broken(nn.Module):
            def __init__(self, num_classes=10):
                super().__init__()
                self.layers = build_helper(num_classes)
        """,
    )
    result = python(project, "train.py", "-c", "config.json", "--set", "arch.type=Broken", "--set", "arch.args={}")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stdout
    assert f'File "{project / "model" / "broken.py"}", line 8, in __init__' in result.stdout
    assert result.stdout.rstrip().endswith("NameError: name 'build_helper' is not defined")


def test_a_package_the_users_file_needs_is_named_in_one_line(project):
    write(project, "model/fancy.py", "import no_such_package_here\n")
    result = python(project, "train.py", "-c", "config.json")
    assert result.returncode == 2
    assert result.stdout == "error: model/fancy.py imports 'no_such_package_here', which is not installed; install it\n"


def test_a_torchvision_model_by_its_dotted_path(tmp_path):
    """`arch.type: torchvision.models.resnet18` trains an image-folder project (smoke run)."""
    from helpers import cookiecutter_cli

    out = tmp_path / "out"
    baked = cookiecutter_cli(sys.executable, out, "dataset=image_folder")
    assert baked.returncode == 0, baked.stdout
    project = out / "my_project"
    config = json.loads((project / "config.json").read_text(encoding="utf-8"))
    config["arch"] = {"type": "torchvision.models.resnet18", "args": {"num_classes": 3}}
    (project / "config.json").write_text(json.dumps(config), encoding="utf-8")
    result = python(project, "train.py", "-c", "config.json", "--smoke")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Built torchvision.models.resnet18 from config key 'arch'" in result.stdout
