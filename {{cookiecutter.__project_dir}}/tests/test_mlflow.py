"""MLflow tracking, read back through MLflow's own client from a real local store."""

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

import train
from tests.helpers import PROJECT_DIR, finish, read_until, run_script, start_script


def tracked(store) -> list[str]:
    """--set options that track into the SQLite store `store`."""
    trackers = [{"type": "MLflowTracker", "args": {"tracking_uri": f"sqlite:///{store.as_posix()}"}}]
    return ["--set", f"trackers={json.dumps(trackers)}"]


def runs(store, experiment: str = "Tests") -> list:
    client = MlflowClient(f"sqlite:///{store.as_posix()}")
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], order_by=["start_time"])


def tracked_sweep(tmp_path, epochs: int) -> str:
    """The tests' sweep config (tests/test_sweep.py), tracking into the SQLite store m.db."""
    from tests.test_sweep import sweep_config

    config = json.loads(Path(sweep_config(tmp_path, epochs=epochs)).read_text(encoding="utf-8"))
    config["trackers"] = [{"type": "MLflowTracker", "args": {"tracking_uri": f"sqlite:///{tmp_path.as_posix()}/m.db"}}]
    (tmp_path / "sweep.json").write_text(json.dumps(config), encoding="utf-8")
    return str(tmp_path / "sweep.json")


def git_commit() -> str | None:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def test_a_run_is_tracked_with_its_config_metrics_checkpoint_and_folder(quick_run, tmp_path):
    store = tmp_path / "mlflow.db"
    assert train.main([*quick_run, "--set", "trainer.epochs=2", *tracked(store)]) == 0
    (run,) = runs(store)
    client = MlflowClient(f"sqlite:///{store.as_posix()}")
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer.args.lr"] == "0.01" and run.data.params["trainer.epochs"] == "2"
    assert run.data.params["metrics"] == '["tests.parts.accuracy"]'
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [point.step for point in history] == [1, 2] and all(0 <= point.value <= 1 for point in history)
    assert {item.path for item in client.list_artifacts(run.info.run_id)} == {"config.json", "model_best.pth"}
    (run_dir,) = (tmp_path / "Tests").iterdir()
    assert run.data.tags["run_dir"] == run_dir.resolve().as_posix()
    assert run.data.tags.get("mlflow.source.git.commit") == git_commit()


def test_the_default_store_is_in_the_save_folder(quick_run, tmp_path, monkeypatch):
    """With no tracking URI, runs go to <save_dir>/mlflow.db and their files beside it, not to
    an mlruns folder wherever train.py was started."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trackers = [{"type": "MLflowTracker", "args": {"tracking_uri": None}}]
    args = [*quick_run, "--set", "trainer.epochs=1", "--set", f"trackers={json.dumps(trackers)}"]
    assert train.main(args) == 0
    (run,) = runs(tmp_path / "mlflow.db")
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").resolve().as_uri())
    assert list((tmp_path / "mlartifacts").glob("*/artifacts/model_best.pth"))
    assert not (PROJECT_DIR / "mlruns").exists()


@pytest.mark.slow
def test_a_resumed_run_continues_its_mlflow_run(quick_run, tmp_path):
    store = tmp_path / "mlflow.db"
    assert train.main([*quick_run, "--set", "trainer.epochs=1", *tracked(store)]) == 0
    (checkpoint,) = (tmp_path / "Tests").glob("*/checkpoint-epoch1.pth")
    assert train.main(["-r", str(checkpoint), "--set", "trainer.epochs=2", *tracked(store)]) == 0
    (run,) = runs(store)
    client = MlflowClient(f"sqlite:///{store.as_posix()}")
    assert [point.step for point in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    assert run.info.status == "FINISHED"


@pytest.mark.slow
@pytest.mark.skipif(not (PROJECT_DIR / "sweep.py").exists(), reason="the project was made without sweeps")
def test_each_trial_of_a_sweep_is_a_run_nested_under_the_sweeps_run(tmp_path):
    import sweep
    from tests.test_sweep import load_study

    assert sweep.main(["-c", tracked_sweep(tmp_path, epochs=1), "--trials", "2"]) == 0
    parent, *trials = runs(tmp_path / "m.db")
    assert parent.data.tags["sweep"] == "Tests-sweep" and parent.info.status == "FINISHED"
    assert [run.data.tags["mlflow.parentRunId"] for run in trials] == [parent.info.run_id] * 2
    assert all(run.info.status == "FINISHED" for run in trials)
    assert sorted(run.data.tags["trial"] for run in trials) == ["0", "1"]
    best = max(load_study(tmp_path).trials, key=lambda trial: trial.value)
    assert parent.data.tags["best_trial"] == str(best.number) and parent.data.metrics["best_value"] == best.value
    assert parent.data.params["best.optimizer.args.lr"] == str(best.params["optimizer.args.lr"])


@pytest.mark.slow
@pytest.mark.skipif(not (PROJECT_DIR / "sweep.py").exists(), reason="the project was made without sweeps")
def test_a_trial_killed_with_its_sweep_ends_its_mlflow_run_as_failed_when_the_sweep_goes_on(tmp_path):
    path = tracked_sweep(tmp_path, epochs=100)
    process = start_script("sweep.py", "-c", path, "--trials", "5")
    read_until(process, "MLflow run ")  # the trial's run exists in the store
    process.kill()
    finish(process, timeout=60)
    again = run_script("sweep.py", "-c", path, "--trials", "1", "--set", "trainer.epochs=1")
    assert again.returncode == 0, again.stdout + again.stderr
    _, *trials = runs(tmp_path / "m.db")
    assert {run.data.tags["trial"]: run.info.status for run in trials} == {"0": "FAILED", "1": "FINISHED"}


def test_a_tracking_uri_mlflow_refuses_is_one_line_before_any_file(quick_run, tmp_path, capsys):
    trackers = [{"type": "MLflowTracker", "args": {"tracking_uri": "nosuchscheme://host/x"}}]
    assert train.main([*quick_run, "--set", "trainer.epochs=2", "--set", f"trackers={json.dumps(trackers)}"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: MLflowTracker cannot track: MLflow at nosuchscheme://host/x: ") and err.count("\n") == 1
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("server", ["refuses connections", "never answers"])
def test_a_tracking_server_out_of_reach_is_one_line_within_seconds(quick_run, tmp_path, capsys, server):
    """Found before the first step, without MLflow's minutes of retries: exit code 2, one line,
    nothing written. (The bound checked is a minute; the probe allows 5 s, without retries.)"""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        if server == "never answers":
            listener.listen()  # connections are queued by the system, and never read
        trackers = [
            {"type": "MLflowTracker", "args": {"tracking_uri": f"http://127.0.0.1:{listener.getsockname()[1]}"}}
        ]
        started = time.monotonic()
        assert train.main([*quick_run, "--set", f"trackers={json.dumps(trackers)}"]) == 2
        assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert err.startswith("error: MLflowTracker cannot track: MLflow at http://127.0.0.1:") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
