"""A checkpoint made by someone else is data: it never chooses what code is imported or called
(a study's trials: tests/test_sweep.py). Planted code would leave a marker file; nothing
destructive is ever named."""

import socket
import sys

import pytest
import torch

import test as evaluate_script
import train
from tests.helpers import PROJECT_DIR, build_trainer
from utils.config_checks import is_remote

# Importing this module is the planted code: it leaves a marker beside itself, and it offers
# everything a config could name, so that only the refusal keeps it from running.
PLANTED = """
import pathlib
pathlib.Path(__file__).with_name("planted-code-ran").write_text("imported")
from tests.parts import TinyCNN
from trainer.trainer import Trainer
from logger.trackers import CSVTracker as Tracker
from tests.parts import cross_entropy as loss
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    build_trainer("trainer.epochs=1").train(run_dir)
    return run_dir / "checkpoint-epoch1.pth"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A module `planted` that can be imported, outside the project; returns its marker file."""
    (tmp_path / "planted.py").write_text(PLANTED, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "planted", raising=False)
    monkeypatch.chdir(PROJECT_DIR)
    return tmp_path / "planted-code-ran"


def forged(trained, folder, change) -> str:
    """A copy of a real checkpoint whose stored config was changed by `change`."""
    checkpoint = torch.load(trained, weights_only=True)
    change(checkpoint["config"])
    folder.mkdir(exist_ok=True)
    torch.save(checkpoint, folder / "checkpoint-epoch1.pth")
    return str(folder / "checkpoint-epoch1.pth")


def system_call(marker):
    command = f"\"{sys.executable}\" -c \"open(r'{marker}', 'w')\""
    return lambda config: config.update(arch={"type": "os.system", "args": {"command": command}})


NAMES = {
    "arch.type": lambda config: config["arch"].update(type="planted.TinyCNN"),
    "trainer.type": lambda config: config["trainer"].update(type="planted.Trainer"),
    "trackers[0].type": lambda config: config.update(trackers=[{"type": "planted.Tracker"}]),
    "loss": lambda config: config.update(loss="planted.loss"),
    "metrics[0]": lambda config: config.update(metrics=["sys.exit"]),  # a built-in module: no file
}


@pytest.mark.parametrize("script", [train, evaluate_script], ids=["train.py", "test.py"])
@pytest.mark.parametrize("key", list(NAMES))
def test_a_checkpoint_naming_code_outside_the_project_is_refused_before_it_is_imported(
    trained, tmp_path, planted, capsys, script, key
):
    path = forged(trained, tmp_path / "shared", NAMES[key])
    before = sorted(p.name for p in (tmp_path / "shared").iterdir())
    assert script.main(["-r", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: config key '{key}': the checkpoint's config names ") and err.count("\n") == 1
    assert "--trust-checkpoint" in err and "-c" in err
    assert not planted.exists() and "planted" not in sys.modules
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == before  # nothing written


def test_a_checkpoint_cannot_call_a_system_command(trained, tmp_path, planted, capsys):
    marker = tmp_path / "command-ran"
    path = forged(trained, tmp_path / "shared", system_call(marker))
    assert evaluate_script.main(["-r", path]) == 2
    assert "names 'os.system', from outside this project" in capsys.readouterr().err
    assert train.main(["-r", path]) == 2
    assert not marker.exists()


def test_trust_checkpoint_lets_the_user_allow_the_checkpoints_names(trained, tmp_path, planted):
    """The refusal, not something else, is what kept the planted module from running."""
    path = forged(trained, tmp_path / "shared", NAMES["arch.type"])
    assert evaluate_script.main(["-r", path, "--trust-checkpoint"]) == 0
    assert planted.exists()


def test_a_checkpoints_names_from_the_project_and_the_torch_catalogs_still_resolve(trained, tmp_path, planted):
    """Short names, the project's own dotted paths (tests.parts.TinyCNN) and a catalog's class by
    its full path (torch.optim.AdamW) need no flag."""
    path = forged(trained, tmp_path / "shared", lambda config: config["optimizer"].update(type="torch.optim.AdamW"))
    assert evaluate_script.main(["-r", path, "-d", "cpu"]) == 0
    assert train.main(["-r", path, "--set", "trainer.epochs=2"]) == 0


def test_a_checkpoint_cannot_choose_where_the_run_is_sent(trained, tmp_path, capsys):
    """An address in a checkpoint's config (a tracking server that would receive the run's
    metrics, config and best model) is refused before anything connects to it."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        address = f"http://127.0.0.1:{server.getsockname()[1]}"
        tracker = {"type": "MLflowTracker", "args": {"tracking_uri": address}}
        path = forged(trained, tmp_path / "shared", lambda config: config.update(trackers=[tracker]))
        for script in (train, evaluate_script):
            assert script.main(["-r", path]) == 2
            err = capsys.readouterr().err
            assert (
                err.startswith(
                    f"error: config key 'trackers[0].args.tracking_uri': the checkpoint's config names the address "
                    f"'{address}', and a checkpoint never chooses where data is sent"
                )
                and err.count("\n") == 1
            ), err
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()  # nobody connected


@pytest.mark.parametrize(
    "value, remote",
    [
        ("http://127.0.0.1:5000", True),
        ("postgresql://user@db.example/runs", True),
        ("\\\\share.example\\data", True),  # Windows would log in to it with the user's credentials
        ("//share.example/data", True),
        ("file://share.example/data/x.npz", True),
        ("file:///home/me/data", False),
        ("sqlite:///saved/mlflow.db", False),
        ("sqlite:////abs/saved/mlflow.db", False),
        ("data/", False),
        ("C:\\data\\images", False),
    ],
)
def test_what_counts_as_another_machines_address(value, remote):
    assert is_remote(value) is remote
