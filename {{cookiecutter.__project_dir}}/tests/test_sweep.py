"""Hyperparameter sweeps (sweep.py): real Optuna studies of real trials on the bundled digits,
read back through Optuna's own API."""

import json
import os
import re
import signal
from pathlib import Path

import optuna
import pytest

import sweep
import train
from parse_config import load_config
from tests.helpers import PROJECT_DIR, TEST_CONFIG, TORCHRUN, finish, read_until, run_script, start_script
from utils.search_space import refusal

SPACE = {
    "optimizer.args.lr": {"type": "log_uniform", "low": 0.001, "high": 0.03},
    "arch.args.channels": {"type": "categorical", "choices": [4, 8]},
}
COMPLETE, PRUNED, FAIL = (optuna.trial.TrialState[state] for state in ("COMPLETE", "PRUNED", "FAIL"))


def sweep_config(tmp_path, params=None, epochs: int = 2, **settings) -> str:
    """The tests' config with a sweep section, saving into `tmp_path`, as a file."""
    config = load_config(PROJECT_DIR / TEST_CONFIG)
    config["data_loader"]["args"]["data_dir"] = (PROJECT_DIR / "data").as_posix()
    config["trainer"].update(epochs=epochs, save_dir=tmp_path.as_posix())
    config["sweep"] = {"params": params or SPACE, **settings}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def load_study(tmp_path) -> optuna.Study:
    storage = f"sqlite:///{(tmp_path / 'Tests-sweep' / 'study.db').as_posix()}"
    return optuna.load_study(study_name="Tests-sweep", storage=storage)


def test_a_sweep_runs_its_trials_and_writes_the_best_config(tmp_path, capsys):
    """Each trial is an ordinary run; the study knows every trial, the best one's config trains
    with train.py, and the plots are PNG files."""
    assert sweep.main(["-c", sweep_config(tmp_path), "--trials", "3"]) == 0
    study = load_study(tmp_path)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # trainer.monitor: max val_accuracy
    assert [trial.state for trial in study.trials] == [COMPLETE] * 3
    for trial in study.trials:
        assert 0.001 <= trial.params["optimizer.args.lr"] <= 0.03 and trial.params["arch.args.channels"] in (4, 8)
        run_dir = tmp_path / "Tests-sweep" / os.path.basename(trial.user_attrs["run_dir"])
        assert (run_dir / "checkpoint-epoch2.pth").exists() and (run_dir / "metrics.csv").exists()
        assert 0.0 < trial.value <= 1.0
    best = json.loads((tmp_path / "Tests-sweep" / "best_config.json").read_text(encoding="utf-8"))
    assert "sweep" not in best and best["optimizer"]["args"]["lr"] == study.best_params["optimizer.args.lr"]
    for name in ("optimization_history.png", "param_importances.png"):
        assert (tmp_path / "Tests-sweep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert f"best: trial {study.best_trial.number}, val_accuracy" in out and out.count(" complete ") == 3
    best_path = str(tmp_path / "Tests-sweep" / "best_config.json")
    assert (
        train.main(["-c", best_path, "--set", "trainer.epochs=1", "--set", f"trainer.save_dir={tmp_path / 'b'}"]) == 0
    )


def test_the_pruner_stops_trials_after_an_epoch(tmp_path):
    """The monitored value goes to the study after each epoch; a trial the pruner stops is
    marked pruned and keeps what it saved."""
    pruner = {"type": "ThresholdPruner", "args": {"lower": 1.01}}  # val_accuracy is never above 1
    assert sweep.main(["-c", sweep_config(tmp_path, epochs=3, pruner=pruner), "--trials", "2"]) == 0
    study = load_study(tmp_path)
    assert [trial.state for trial in study.trials] == [PRUNED] * 2
    assert [list(trial.intermediate_values) for trial in study.trials] == [[1], [1]]
    checkpoints = sorted(path.name for path in (tmp_path / "Tests-sweep").glob("*/checkpoint-*.pth"))
    assert checkpoints == ["checkpoint-epoch1.pth"] * 2


def test_a_trial_whose_loss_becomes_nan_fails_and_the_sweep_goes_on(tmp_path, capsys):
    params = {"loss": {"type": "categorical", "choices": ["tests.parts.nan_loss", "torch.nn.functional.cross_entropy"]}}
    config = sweep_config(tmp_path, params, sampler={"type": "BruteForceSampler", "args": {"seed": 0}})
    assert sweep.main(["-c", config, "--trials", "2"]) == 0
    study = load_study(tmp_path)
    states = {trial.params["loss"]: trial.state for trial in study.trials}
    assert states == {"tests.parts.nan_loss": FAIL, "torch.nn.functional.cross_entropy": COMPLETE}
    (failed,) = study.get_trials(states=(FAIL,))
    assert "NaN" in failed.user_attrs["error"]
    assert "Traceback" not in capsys.readouterr().err


def space(key: str, **distribution) -> dict:
    return {"params": {key: distribution}}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"params": {"optimizer.arg.lr": SPACE["optimizer.args.lr"]}},
            "no section 'optimizer.arg' (did you mean 'args'?)",
        ),
        (space("optimizer.args.lr", type="uniform", low=0.1, high=0.01), "low (0.1) must be below high (0.01)"),
        (space("optimizer.args.lr", type="log_uniform", low=0, high=0.1), "a log scale needs low > 0"),
        (space("arch.args.channels", type="categorical", low=1), "categorical takes only 'choices'"),
        (space("optimizer.args.lr", type="loguniform", low=0.1, high=1), "got 'loguniform', expected"),
        (space("arch.args.chanels", type="int", low=4, high=8), "(did you mean 'channels'?)"),
        (space("arch.args.channels", type="int", low=4, high=8, step=0.5), "int needs a whole number for step"),
        ({"pruner": {"type": "MedianPrunr"}}, "unknown name 'MedianPrunr' (did you mean 'MedianPruner'?)"),
        ({"pruner": {"type": "MedianPruner", "args": {"warmup": 1}}}, "config key 'sweep.pruner' (MedianPruner)"),
        ({"trials": 0}, "config key 'sweep.trials': got 0, expected an integer >= 1"),
    ],
)
def test_sweep_mistakes_are_one_line_before_any_trial(tmp_path, capsys, change, message):
    path = Path(sweep_config(tmp_path))
    config = json.loads(path.read_text(encoding="utf-8"))
    config["sweep"].update(change)
    path.write_text(json.dumps(config), encoding="utf-8")
    assert sweep.main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "Tests-sweep").exists()


def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path, capsys):
    storage = f"sqlite:///{(tmp_path / 'no such folder' / 'study.db').as_posix()}"
    assert sweep.main(["-c", sweep_config(tmp_path), "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --storage {storage}: ") and err.count("\n") == 1, err


def test_a_sweep_whose_every_trial_failed_exits_2(tmp_path, capsys):
    params = {"loss": {"type": "categorical", "choices": ["tests.parts.nan_loss"]}}
    assert sweep.main(["-c", sweep_config(tmp_path, params), "--trials", "2"]) == 2
    assert "error: all 2 trials failed; the first: loss became NaN" in capsys.readouterr().err


def test_a_sweep_needs_a_monitored_metric_and_a_sweep_section(tmp_path, capsys):
    path = sweep_config(tmp_path)
    assert sweep.main(["-c", path, "--set", "trainer.monitor=off"]) == 2
    assert "config key 'trainer.monitor' is off; a sweep optimises it" in capsys.readouterr().err
    assert sweep.main(["-c", TEST_CONFIG]) == 2
    assert "has no 'sweep' section" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_sweep_continues_the_same_study(tmp_path):
    """kill -9 in the middle of a trial, then the same command again: the study goes on, and the
    trial that was running is marked failed at once (its run folder keeps its checkpoints)."""
    path = sweep_config(tmp_path, epochs=100)
    process = start_script("sweep.py", "-c", path, "--trials", "5")
    read_until(process, "Saved")
    process.kill()
    finish(process, timeout=60)
    again = run_script("sweep.py", "-c", path, "--trials", "2", "--set", "trainer.epochs=1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Trial 0 was left running by a stopped sweep: marked failed" in again.stdout
    assert [trial.state for trial in load_study(tmp_path).trials] == [FAIL, COMPLETE, COMPLETE]


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_a_signal_stops_the_sweep_after_saving_and_the_study_goes_on(tmp_path):
    path = sweep_config(tmp_path, epochs=100)
    process = start_script("sweep.py", "-c", path, "--trials", "5")
    read_until(process, "Saved")
    process.send_signal(signal.SIGTERM)
    output = finish(process, timeout=60)
    assert process.returncode == 143, output
    assert "Traceback" not in output and "run the same command again to continue the study" in output
    # Saved mid-epoch, or at an epoch's end when the signal came during validation (slow machines)
    resume = re.search(r"resume with: python train.py -r (\S+)", output)
    assert resume and Path(resume[1]).is_file() and Path(resume[1]).name != "checkpoint-epoch1.pth", output
    again = run_script("sweep.py", "-c", path, "--trials", "1", "--set", "trainer.epochs=1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [trial.state for trial in load_study(tmp_path).trials] == [FAIL, COMPLETE]


@pytest.mark.slow
def test_under_torchrun_only_the_main_process_talks_to_the_study(tmp_path):
    """Every process trains each trial (DDP); the study, its log lines and the table come from
    the main process alone."""
    process = start_script("sweep.py", "-c", sweep_config(tmp_path, epochs=1), "--trials", "2", command=TORCHRUN)
    output = finish(process, timeout=300)
    assert process.returncode == 0, output
    assert [trial.state for trial in load_study(tmp_path).trials] == [COMPLETE] * 2
    assert output.count("Trial 1: ") == 1 and output.count("best: trial") == 1


def test_the_best_config_takes_only_declared_values_from_trials_that_ran(tmp_path, capsys):
    """Anyone who can write a study's storage can add trials: best_config.json comes only from
    trials whose values lie in sweep.params and whose run folder is one of the study's."""
    config = sweep_config(tmp_path)
    assert sweep.main(["-c", config, "--trials", "1"]) == 0
    study = load_study(tmp_path)
    (honest,) = study.trials
    lr = optuna.distributions.FloatDistribution(1e-6, 10.0, log=True)  # (as compatible as the study needs)
    arch = optuna.distributions.CategoricalDistribution(["planted.TinyCNN"])  # a name no config here uses
    forgeries = [  # (params, distributions, run_dir): every one scores better than any real trial
        ({"arch.type": "planted.TinyCNN"}, {"arch.type": arch}, honest.user_attrs["run_dir"]),
        ({"optimizer.args.lr": 5.0}, {"optimizer.args.lr": lr}, honest.user_attrs["run_dir"]),
        ({"optimizer.args.lr": 0.01}, {"optimizer.args.lr": lr}, str(tmp_path)),
        ({"optimizer.args.lr": 0.01}, {"optimizer.args.lr": lr}, str(tmp_path / "Tests-sweep" / "never-ran")),
    ]
    for params, distributions, run_dir in forgeries:
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions, value=2.0, user_attrs={"run_dir": run_dir}
            )
        )
    capsys.readouterr()
    assert sweep.main(["-c", config, "--trials", "1"]) == 0
    out = capsys.readouterr().out
    for number in range(1, 5):
        assert f"Trial {number} is left out of the best config" in out
    best = json.loads((tmp_path / "Tests-sweep" / "best_config.json").read_text(encoding="utf-8"))
    real = [t for t in load_study(tmp_path).trials if t.number in (0, 5)]
    expected = max(real, key=lambda t: t.value)
    assert best["arch"]["type"] == json.loads((PROJECT_DIR / TEST_CONFIG).read_text())["arch"]["type"]
    assert best["optimizer"]["args"]["lr"] == expected.params["optimizer.args.lr"]
    assert f"best: trial {expected.number}," in out


@pytest.mark.parametrize(
    "values, why",
    [
        ({"arch.args.channels": 64}, "arch.args.channels=64 is outside"),
        ({"arch.args.channels": True}, "arch.args.channels=True is outside"),  # True == 1, but not a choice
        ({"optimizer.args.lr": "0.01"}, "optimizer.args.lr='0.01' is outside"),
        ({"optimizer.args.lr": float("nan")}, "optimizer.args.lr=nan is outside"),
        ({"trainer.type": "Trainer"}, "'trainer.type' is not a key of sweep.params"),
        ({"arch.args.channels": 8, "optimizer.args.lr": 0.001}, None),
    ],
)
def test_a_trials_values_must_be_points_of_the_search_space(values, why):
    space = {**SPACE, "arch.args.channels": {"type": "categorical", "choices": [1, 4, 8]}}
    result = refusal(space, values)
    assert result is None if why is None else why in result
