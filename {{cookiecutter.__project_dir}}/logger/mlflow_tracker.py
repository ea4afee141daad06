"""MLflow tracking: the config's values as parameters, every epoch's metrics, the best checkpoint
and the config as artifacts, and tags naming the run folder and the git commit.

By default runs go to a local store, `<save_dir>/mlflow.db` (nothing to start). To browse it:

    pip install mlflow
    mlflow ui --backend-store-uri sqlite:///saved/mlflow.db

A team server: set `tracking_uri` to its address (http://host:5000), or the MLFLOW_TRACKING_URI
environment variable.
"""

import contextlib
import importlib.util
import json
import logging
import os
import time
from pathlib import Path

from logger.run_record import git_commit
from logger.trackers import Tracker
from utils.errors import ConfigError, WriteError, first_line

logger = logging.getLogger(__name__)
STATUS = {"finished": "FINISHED", "stopped": "KILLED", "failed": "FAILED"}
MAX_PARAMS_PER_CALL = 100  # MLflow's limit for one log_batch


# MLflow retries an unanswered request for minutes by default; a run should lose a tracker sooner.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
PROBE = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


class MLflowTracker(Tracker):
    """`experiment` defaults to the config's name; `parent_run_id` nests this run under another
    and `tags` are added to it (sweep.py sets both for each trial); `log_checkpoint: false` keeps
    model_best.pth out of MLflow. A tracking server is asked once before training starts: one
    that does not answer within seconds is a config error, not a run that waits for it. Failing
    later, it is switched off (see Trackers) and the run goes on."""

    writes = "MLflow data"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        parent_run_id: str | None = None,
        log_checkpoint: bool = True,
        tags: dict | None = None,
    ) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError("MLflowTracker needs MLflow's client: pip install mlflow-skinny sqlalchemy alembic")
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.parent_run_id, self.log_checkpoint, self.tags = parent_run_id, log_checkpoint, tags or {}
        self.run_id: str | None = None
        probe(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        self.run_dir, self.uri = Path(run_dir).resolve(), tracking_uri(self.tracking_uri, config)
        with mlflow_errors(self.uri):
            self._start(config)

    def _start(self, config: dict) -> None:
        from mlflow import MlflowClient  # slow to import: in the trackers' thread

        uri = self.uri
        self.client = client = MlflowClient(uri)
        experiment_id = experiment(client, self.experiment or config["name"], uri)
        resumed = client.search_runs(
            [experiment_id], filter_string=f"tags.run_dir = '{self.run_dir.as_posix()}'", max_results=1
        )
        if resumed:  # a resumed run continues its MLflow run
            self.run_id = resumed[0].info.run_id
            client.update_run(self.run_id, status="RUNNING")
            logged = resumed[0].data.params
        else:
            tags = {"run_dir": self.run_dir.as_posix(), "mlflow.source.name": "train.py"}
            tags.update({"mlflow.parentRunId": self.parent_run_id} if self.parent_run_id else {}, **self.tags)
            tags.update({"mlflow.source.git.commit": commit} if (commit := git_commit()) else {})
            self.run_id = client.create_run(experiment_id, run_name=self.run_dir.name, tags=tags).info.run_id
            logged = {}
        params = flatten({key: value for key, value in config.items() if key != "sweep"})  # (sweep.py's, not the run's)
        self._log_params({k: v for k, v in params.items() if k not in logged})
        logger.info("MLflow run %s in %s; browse it with: mlflow ui --backend-store-uri %s", self.run_id, uri, uri)

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with mlflow_errors(self.uri):
            self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, epoch) for k, v in values.items()])

    def close(self, status: str) -> None:
        if self.run_id is None:
            return
        best = self.run_dir / "model_best.pth"
        with mlflow_errors(self.uri):
            if status == "finished" and self.log_checkpoint and best.exists():
                self.client.log_artifact(self.run_id, str(best))
            if (self.run_dir / "config.json").exists():
                self.client.log_artifact(self.run_id, str(self.run_dir / "config.json"))
            self.client.set_terminated(self.run_id, STATUS[status])

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS_PER_CALL])


class SweepRun:
    """sweep.py's own MLflow run, under which each trial's run is nested; a continued study
    continues it."""

    def __init__(self, config: dict, study: str) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError("MLflowTracker needs MLflow's client: pip install mlflow-skinny sqlalchemy alembic")
        from mlflow import MlflowClient

        self.args = next(section.get("args", {}) for section in mlflow_sections(config))
        self.uri = uri = tracking_uri(self.args.get("tracking_uri"), config)
        probe(uri)
        self.experiment = self.args.get("experiment") or config["name"]
        with mlflow_errors(uri):
            self.client = MlflowClient(uri)
            experiment_id = experiment(self.client, self.experiment, uri)
            found = self.client.search_runs([experiment_id], filter_string=f"tags.sweep = '{study}'", max_results=1)
            if found:
                self.run_id = found[0].info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                self.run_id = self.client.create_run(experiment_id, run_name=study, tags={"sweep": study}).info.run_id

    def nest(self, trial_config: dict, number: int) -> None:
        """Make the MLflowTracker of trial `number`'s config log under this run, tagged with it."""
        for section in mlflow_sections(trial_config):
            args = section.setdefault("args", {})
            args.update(parent_run_id=self.run_id, experiment=self.experiment, tags={"trial": str(number)})

    def fail_trials(self, numbers: set[int]) -> None:
        """End as FAILED the runs still RUNNING of trials the study marked failed (a killed sweep)."""
        with mlflow_errors(self.uri):
            experiment_id = self.client.get_run(self.run_id).info.experiment_id
            nested = f"tags.mlflow.parentRunId = '{self.run_id}' and attributes.status = 'RUNNING'"
            for run in self.client.search_runs([experiment_id], filter_string=nested):
                if run.data.tags.get("trial", "").isdigit() and int(run.data.tags["trial"]) in numbers:
                    self.client.set_terminated(run.info.run_id, "FAILED")

    def close(self, status: str, best=None) -> None:
        """End the sweep's run: "finished", "stopped" or "failed"; record the `best` trial's value
        and params (an Optuna FrozenTrial)."""
        from mlflow.entities import Metric, Param

        with mlflow_errors(self.uri):
            if best is not None:
                params = [Param(f"best.{key}", str(value)[:500]) for key, value in best.params.items()]
                metric = Metric("best_value", best.value, int(time.time() * 1000), best.number)
                self.client.log_batch(self.run_id, metrics=[metric], params=params[:MAX_PARAMS_PER_CALL])
                self.client.set_tag(self.run_id, "best_trial", str(best.number))
            self.client.set_terminated(self.run_id, STATUS[status])


def mlflow_sections(config: dict) -> list[dict]:
    """The config's `trackers` entries that name MLflowTracker (by short name or dotted path)."""
    return [section for section in config["trackers"] if section["type"].rpartition(".")[2] == "MLflowTracker"]


@contextlib.contextmanager
def mlflow_errors(uri: str):
    """MLflow refusing or unreachable (a wrong URI, a server down, a store that cannot be
    written): one line, like a failed write."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError  # (a local store's)

    try:
        yield
    except (MlflowException, SQLAlchemyError) as exc:
        raise WriteError(f"MLflow at {uri}: {first_line(exc)}") from None


def probe(uri: str | None) -> None:
    """Ask the store or server at `uri` for one experiment, within seconds (not a local SQLite
    file or folder: those are created when the run starts); bound MLflow's later requests too,
    unless the user set their own bounds."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not uri or uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return
    from mlflow import MlflowClient

    saved = {name: os.environ.get(name) for name in PROBE}
    os.environ.update(PROBE)
    try:
        with mlflow_errors(uri):
            MlflowClient(uri).search_experiments(max_results=1)
    except WriteError as exc:
        raise ConfigError(f"MLflowTracker cannot track: {exc}; start the server, or fix tracking_uri") from None
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def experiment(client, name: str, uri: str) -> str:
    """The id of experiment `name`, created if needed. A SQLite store keeps the files of its runs
    beside it (MLflow's default would be ./mlruns, wherever the run was started)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    database = uri.removeprefix("sqlite:///")
    artifacts = (Path(database).resolve().parent / "mlartifacts").as_uri() if uri.startswith("sqlite:///") else None
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except MlflowException:  # another process (a sweep on another machine) created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def tracking_uri(configured: str | None, config: dict) -> str:
    """`configured`, else $MLFLOW_TRACKING_URI, else a SQLite file in the save folder."""
    for name in ("mlflow", "alembic"):  # their INFO lines about creating tables are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    save_dir = Path(config["trainer"]["save_dir"]).resolve()
    save_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(save_dir / 'mlflow.db').as_posix()}"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """`{"optimizer": {"args": {"lr": 0.001}}}` -> `{"optimizer.args.lr": "0.001"}`; lists as JSON."""
    flat = {}
    for key, value in config.items():
        if key.startswith("$"):  # "$schema": for editors only
            continue
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (value if isinstance(value, str) else json.dumps(value))[:500]
    return flat
