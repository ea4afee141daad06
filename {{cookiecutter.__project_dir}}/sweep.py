"""Search hyperparameters with Optuna: the config's `sweep` section says which keys vary and how.

python sweep.py -c config.json                     # sweep.trials trials; again later: the study goes on
python sweep.py -c config.json --trials 50 --set trainer.epochs=10
python sweep.py -c config.json --storage postgresql://user:password@host/sweeps --study digits
torchrun --standalone --nproc_per_node=2 sweep.py -c config.json
python train.py -c saved/<study>/best_config.json  # train the best trial's config

Each trial is an ordinary run in saved/<study>/ (checkpoints, train.log, metrics.csv), scored by
the best value of `trainer.monitor`. The study lives in saved/<study>/study.db unless --storage
names a database that several sweep.py processes, on several machines, share.
"""

import gc
import json
import logging
import math
import signal
import socket
import sys
import threading
import warnings
from pathlib import Path

import filelock
import optuna
import sqlalchemy
import torch

import train
from logger import setup_logging
from parse_config import ConfigParser, resolve
from utils import runtime, search_space
from utils.checkpoint import save_checkpoint
from utils.errors import ConfigError, script_arguments
from utils.runtime import FailedElsewhere, NonFiniteLoss, StopSignal, TrainingStopped

logger = logging.getLogger("sweep")
HEARTBEAT_S, GRACE_S = 5, 20  # a trial whose process fell silent for GRACE_S is marked failed


def main(argv=None) -> int:
    parser = script_arguments(__doc__, None, "config file with a sweep section")
    parser.add_argument("--trials", type=int, help="trials to run now (default: sweep.trials)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite in saved/<study>/)")
    parser.add_argument("--study", help="study name (default: <config name>-sweep)")
    args = parser.parse_args(argv)
    if args.config is None:
        parser.error("the following arguments are required: -c/--config")
    again = "run the same command again to continue the study"
    # a signal stopped a trial: it is marked failed, its checkpoint kept
    return runtime.exit_code(sweep, args, f"sweep stopped by SIGINT; {again}", f"\nsweep stopped; {again}")


def sweep(args) -> int:
    # Optuna marks heartbeats, some samplers and its plots experimental; they are used as documented.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials {args.trials}: give at least 1")
    config = ConfigParser.from_args(args)
    if "sweep" not in config:
        raise ConfigError(f"{args.config} has no 'sweep' section; add one (README: Hyperparameter sweeps)")
    params = search_space.check(config)
    if config["trainer"]["monitor"] == "off":
        raise ConfigError("config key 'trainer.monitor' is off; a sweep optimises it: set it, e.g. 'min val_loss'")
    first = {key: spec.get("low", spec.get("choices", [None])[0]) for key, spec in params.items()}
    ConfigParser(search_space.apply(config, first))  # every key the trials set must fit the config
    chosen = {key: optuna_object(config["sweep"], key) for key in ("sampler", "pruner") if config["sweep"].get(key)}
    chosen.setdefault("pruner", optuna.pruners.NopPruner())  # null: no pruning (Optuna's default would prune)
    device = runtime.setup(args.device)
    setup_logging(config["trainer"]["verbosity"] if runtime.is_main() else 0)
    name = args.study or f"{config['name']}-sweep"
    folder = Path(config["trainer"]["save_dir"]) / name
    trials = args.trials or config["sweep"].get("trials", 20)
    if not runtime.is_main():  # the main process alone talks to the study
        while (values := runtime.all_gather(None)[0]) is not None:
            _run_trial(config, values, name, device, trial=None)
        return 0
    study = open_study(config, name, folder, args.storage, chosen)
    objective = Objective(config, params, name, device, folder)
    if objective.parent is not None:  # the MLflow runs of trials a killed sweep left running
        objective.parent.fail_trials({t.number for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,))})
    try:
        study.optimize(objective, n_trials=trials)
    except BaseException:
        objective.close_parent("failed")
        raise
    if objective.stopped is not None:  # a signal: the trial's checkpoint is saved, the trial marked failed
        objective.close_parent("stopped")
        raise objective.stopped
    runtime.all_gather(None)  # the other processes stop waiting for trials
    best = None
    try:
        best = summarize(study, config, folder)
    finally:
        objective.close_parent("finished", best)
    if objective.errors and len(objective.errors) == trials:  # nothing this run tried could train
        raise ConfigError(f"all {trials} trials failed; the first: {objective.errors[0]}")
    return 0


def open_study(config: ConfigParser, name: str, folder: Path, storage: str | None, chosen: dict) -> optuna.Study:
    """The study `name`, created or continued, with the config's sampler and pruner (`chosen`)."""
    folder.mkdir(parents=True, exist_ok=True)  # trials' run folders, locks, best config and plots
    if storage is None:
        storage = f"sqlite:///{(folder / 'study.db').as_posix()}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we log each trial ourselves
    try:
        rdb = optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise ConfigError(f"--storage {storage}: {str(exc).splitlines()[0]}") from None
    direction = "minimize" if config["trainer"]["monitor"].startswith("min") else "maximize"
    study = optuna.create_study(storage=rdb, study_name=name, direction=direction, load_if_exists=True, **chosen)
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"study {name!r} was made to {study.direction.name.lower()}; trainer.monitor asks to {direction}"
        )
    fail_dead_trials(study, folder)
    done = sum(t.state.is_finished() for t in study.trials)
    logger.info("Study %r in %s (finished trials so far: %d)", name, storage, done)
    return study


def fail_dead_trials(study: optuna.Study, folder: Path) -> None:
    """Mark failed the trials left running by a sweep.py that died: on this machine, those whose
    lock is free; elsewhere, those whose heartbeat stopped GRACE_S ago."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        lock = folder / f"trial-{trial.number}.lock"
        if trial.user_attrs.get("host") != socket.gethostname() or not lock.exists():
            continue
        try:
            with filelock.FileLock(lock, timeout=0):
                running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                if trial.number in [t.number for t in running]:  # (its process may just have ended it)
                    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                    logger.warning("Trial %d was left running by a stopped sweep: marked failed", trial.number)
        except filelock.Timeout:  # its process is alive
            continue
        lock.unlink(missing_ok=True)
    optuna.storages.fail_stale_trials(study)


def optuna_object(settings: dict, key: str):
    """The sampler or pruner that `settings[key]` names (a class of optuna.samplers or
    optuna.pruners, or a dotted path), built from its args."""
    name, args = settings[key]["type"], settings[key].get("args", {})
    try:
        return resolve(key, name, f"sweep.{key}.type")(**args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config key 'sweep.{key}' ({name}): {exc}") from None


class Objective:
    """One trial: draw values, train with them on every process, return the best monitored value."""

    def __init__(self, config: ConfigParser, params: dict, name: str, device, folder: Path) -> None:
        self.config, self.params, self.name, self.device, self.folder = config, params, name, device, folder
        self.parent = _mlflow_parent(config, name)
        self.stopped: TrainingStopped | None = None
        self.errors: list[str] = []  # why trials of this run failed

    def __call__(self, trial: optuna.Trial) -> float:
        values = search_space.suggest(trial, self.params)
        logger.info("Trial %d: %s", trial.number, ", ".join(f"{k}={v!r}" for k, v in values.items()))
        trial.set_user_attr("host", socket.gethostname())
        lock = self.folder / f"trial-{trial.number}.lock"
        try:
            with filelock.FileLock(lock, timeout=0):  # held while it runs: free once this process is gone
                runtime.all_gather(values)  # the other processes train this trial too
                value = _run_trial(self.config, values, self.name, self.device, trial, self.parent)
        except TrainingStopped as exc:  # raised after optimize(), which would print a traceback
            self.stopped = exc
            trial.study.stop()
            return math.nan  # a trial that returns NaN is marked failed
        finally:
            lock.unlink(missing_ok=True)
        if "error" in trial.user_attrs:
            self.errors.append(trial.user_attrs["error"])
        return value

    def close_parent(self, status: str, best=None) -> None:
        if self.parent is not None:
            self.parent.close(status, best)


def _run_trial(config: ConfigParser, values: dict, name: str, device, trial, parent=None) -> float:
    """Train one trial on this process; `trial` is None on all processes but the main one."""
    settings = search_space.apply(config, values)
    settings["name"] = name  # the trials' run folders sit together, beside the study
    if parent is not None:
        parent.nest(settings, trial.number)
    pruning = Pruning(trial, config["trainer"]["monitor"])
    handlers = {signum: signal.getsignal(signum) for signum in StopSignal.SIGNALS}
    try:
        trainer = train.fit(ConfigParser(settings), device, callbacks=[pruning])
        run_dir, best = trainer.run_dir, trainer.monitor_best
        del trainer  # the next trial needs its memory (a GPU's above all)
    except (NonFiniteLoss, ConfigError, FailedElsewhere) as exc:  # these values do not train: the study learns it
        logger.warning("Trial failed: %s", exc or "on another process")
        if trial is not None:
            trial.set_user_attr("error", str(exc) or "on another process")
        return math.nan  # Optuna marks a trial that returns NaN failed
    finally:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if sys.exc_info()[0] is None and threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():  # a failed trial left stop signals ignored; the sweep goes on
                signal.signal(signum, handler)
    if trial is None:  # the main process tells the study; the others go on to the next trial
        return math.nan
    trial.set_user_attr("run_dir", str(run_dir))
    if pruning.pruned:
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned}")
    return best


class Pruning:
    """After each epoch: report the monitored value to the study, and end the trial on every
    process when the pruner says so (the main process decides). The trial ends as an early stop
    does: saved, its trackers closed."""

    def __init__(self, trial, monitor: str) -> None:
        self.trial, self.metric = trial, monitor.split()[1]
        self.pruned = 0  # the epoch after which it was pruned

    def __call__(self, epoch: int, log: dict) -> bool:
        prune = None
        if self.trial is not None:
            self.trial.report(log[self.metric], epoch)
            prune = self.trial.should_prune()
        if runtime.all_gather(prune)[0]:
            logger.info("Trial pruned after epoch %d", epoch)
            self.pruned = epoch
        return bool(self.pruned)


def summarize(study: optuna.Study, config: dict, folder: Path):
    """Print the trials and the best one; write its config and the plots beside the study; return
    the best trial (None without one)."""
    rows = [
        (t.number, t.state.name.lower(), "" if t.value is None else f"{t.value:.6g}", t.params) for t in study.trials
    ]
    print(f"{'trial':>5}  {'state':<8}  {'value':<10}  params")
    for number, state, value, params in rows:
        print(f"{number:>5}  {state:<8}  {value:<10}  {', '.join(f'{k}={v!r}' for k, v in params.items())}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and _ran_here(t, config, folder)]
    if not complete:
        print("no trial completed yet: no best config")
        return None
    best = (min if study.direction.name == "MINIMIZE" else max)(complete, key=lambda t: t.value)
    path = folder / "best_config.json"
    best_config = search_space.apply(config, best.params)
    save_checkpoint(json.dumps(best_config, indent=2).encode() + b"\n", path)
    metric = config["trainer"]["monitor"].split()[1]
    print(f"best: trial {best.number}, {metric} {best.value:.6g}, run folder {best.user_attrs.get('run_dir')}")
    print(f"its config: {path}; train it with: python train.py -c {path.as_posix()}")
    for plot in plots(study, folder):
        print(f"plot: {plot}")
    return best


def _ran_here(trial: optuna.trial.FrozenTrial, config: dict, folder: Path) -> bool:
    """Whether the best config may come from `trial`: a study's storage may be shared, so its
    values are data: they must be points of `sweep.params`, from a run folder of this study."""
    run_dir = Path(str(trial.user_attrs.get("run_dir"))).resolve()
    why = search_space.refusal(config["sweep"]["params"], trial.params)
    if why is None and not (run_dir.is_relative_to(folder.resolve()) and run_dir.is_dir()):
        why = f"its run folder {trial.user_attrs.get('run_dir')!r} is not a folder of this study on this machine"
    if why is not None:
        logger.warning("Trial %d is left out of the best config: %s", trial.number, why)
    return why is None


def plots(study: optuna.Study, folder: Path) -> list[Path]:
    """PNG files of the optimisation history and, with two finished trials or more, of what
    each parameter mattered."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    kinds = {"optimization_history": optuna_plots.plot_optimization_history}
    if len(finished) >= 2:
        kinds["param_importances"] = optuna_plots.plot_param_importances
    for name, plot in kinds.items():
        try:
            axes = plot(study)
        except (ValueError, RuntimeError) as exc:  # e.g. every finished trial had the same value
            logger.warning("No %s plot: %s", name, exc)
            continue
        path = folder / f"{name}.png"
        axes.figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(path)
    return written


def _mlflow_parent(config: ConfigParser, name: str):
    """With an MLflowTracker in the config, the sweep's own MLflow run, under which each trial is
    a nested run; else None."""
    if not any(tracker.__name__ == "MLflowTracker" for tracker in config.trackers):
        return None
    from logger.mlflow_tracker import SweepRun

    return SweepRun(config, name)


if __name__ == "__main__":
    raise SystemExit(main())
