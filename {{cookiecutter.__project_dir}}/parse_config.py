"""From a config file and command-line options to validated settings and built objects.

Each `{"type": NAME, "args": {...}}` section of the config names a class or function from the
modules listed in `catalog()`. To make your own code usable from the config, define it in one of
those modules, or, for data loaders, in any new file of the `data_loader` folder. Everything is
checked before anything is built. Reading the config file itself (JSON or YAML) is in
utils/config_file.py.
"""

import argparse
import copy
import importlib
import inspect
import json
import logging
import pkgutil
import sys
from datetime import datetime
from pathlib import Path

import torch

import data_loader
import model.loss as module_loss
import model.metric as module_metric
import model.model as module_arch
from base import BaseDataLoader, BaseModel
from logger import attach_log_file
from utils.checkpoint import find_latest, load_checkpoint, run_checkpoints
from utils.config_file import load_config
from utils.config_schema import check_config, did_you_mean
from utils.errors import ConfigError, first_line

logger = logging.getLogger(__name__)

# Arguments that the code passes itself; the config must not set them.
SUPPLIED_BY_CODE = {"optimizer": {"params"}, "lr_scheduler": {"optimizer"}, "data_loader": {"seed"}}


def _defined_in(module, base: type | None = None) -> dict:
    """Subclasses of `base` found in `module`, or (without a base) functions defined in it."""

    def usable(obj) -> bool:
        if base is None:
            return inspect.isfunction(obj) and obj.__module__ == module.__name__
        return inspect.isclass(obj) and issubclass(obj, base) and obj is not base

    return {name: obj for name, obj in vars(module).items() if not name.startswith("_") and usable(obj)}


def _data_loaders() -> dict:
    """The `BaseDataLoader` subclasses of every module in the `data_loader` folder.

    Imported here, when a config is read, rather than at start-up: some need torchvision.
    """
    found, where = {}, {}
    for info in pkgutil.iter_modules(data_loader.__path__):
        try:
            module = importlib.import_module(f"data_loader.{info.name}")
        except (ImportError, SyntaxError) as exc:
            raise ConfigError(f"data_loader/{info.name}.py cannot be imported: {first_line(exc)}") from None
        for name, cls in _defined_in(module, BaseDataLoader).items():
            if name in found and found[name] is not cls:
                raise ConfigError(
                    f"two data loaders are named {name}, in data_loader/{where[name]}.py and "
                    f"data_loader/{info.name}.py; rename one"
                )
            found[name], where[name] = cls, info.name
    return found


def catalog() -> dict[str, dict]:
    """For each config section, the names it may use and what they refer to."""
    return {
        "arch": _defined_in(module_arch, BaseModel),
        "data_loader": _data_loaders(),
        "optimizer": _defined_in(torch.optim, torch.optim.Optimizer),
        "lr_scheduler": _defined_in(torch.optim.lr_scheduler, torch.optim.lr_scheduler.LRScheduler),
        "loss": _defined_in(module_loss),
        "metrics": _defined_in(module_metric),
    }


def _check_arguments(key: str, target, args: dict) -> None:
    """Compare `args` with the signature of `target`, so typos fail before anything is built."""
    params = inspect.signature(target).parameters
    supplied = SUPPLIED_BY_CODE.get(key, set())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    accepted = [n for n in named if n not in supplied]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for name in args:
        if name in supplied:
            raise ConfigError(f"config key '{key}.args.{name}' is set by the code; remove it from the config")
        if name not in named and not takes_any:
            raise ConfigError(
                f"config key '{key}.args.{name}': {target.__name__} has no argument {name!r}"
                f"{did_you_mean(name, accepted)}; it accepts: {', '.join(accepted)}"
            )
    for name in accepted:
        if params[name].default is inspect.Parameter.empty and name not in args:
            raise ConfigError(f"config key '{key}.args.{name}' is missing; {target.__name__} requires it")


def check_num_classes(data_loader: BaseDataLoader, model) -> None:
    """When the data names its classes, the model must have one output per class."""
    classes, outputs = data_loader.classes, getattr(model, "num_classes", None)
    if classes is not None and outputs is not None and outputs != len(classes):
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ConfigError(
            f"config key 'arch.args.num_classes' is {outputs} but the data has {len(classes)} classes "
            f"({shown}); set it to {len(classes)}"
        )


def validate(config: dict, names: dict) -> None:
    """Raise `ConfigError` for the first problem in `config`; return quietly when it is valid.

    `names` is the `catalog()`: what each section may name.
    """
    check_config(config, names)
    for key in ("arch", "data_loader", "optimizer", "lr_scheduler"):
        if config.get(key) is not None:
            _check_arguments(key, names[key][config[key]["type"]], config[key].get("args", {}))


def set_by_path(config: dict, assignment: str) -> None:
    """Apply one `--set a.b.c=value` (value read as JSON, else kept as a string) to `config`."""
    dotted, sep, raw = assignment.partition("=")
    if not sep or not dotted:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set trainer.epochs=5")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    keys = dotted.split(".")
    node, walked = config, []
    for key in keys[:-1]:
        walked.append(key)
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            choices = [k for k, v in node.items() if isinstance(v, dict)] if isinstance(node, dict) else []
            raise ConfigError(f"--set {assignment!r}: no section '{'.'.join(walked)}'{did_you_mean(key, choices)}")
        node = node[key]
    last = keys[-1]
    # New keys are allowed only among a section's `args`, where the signature check vets them.
    if last not in node and walked[-1:] != ["args"]:
        raise ConfigError(f"--set {assignment!r}: unknown key '{dotted}'{did_you_mean(last, node)}")
    node[last] = value


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when available; `cpu`, `cuda`, `cuda:N` and `mps` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def create_run_dir(config: dict) -> Path:
    """Create `save_dir/name/<timestamp>`; runs started in the same second get distinct folders."""
    parent = Path(config["trainer"]["save_dir"]) / config["name"]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        run_dir = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            if not parent.is_dir():
                raise ConfigError(
                    f"config key 'trainer.save_dir': cannot create '{parent}' (a file is in the way)"
                ) from None
        except OSError as exc:
            raise ConfigError(f"config key 'trainer.save_dir': cannot create '{run_dir}': {exc.strerror}") from None
    raise ConfigError(f"could not create a new run folder in '{parent}'; clean it up")


class ConfigParser:
    """A validated config dict and the means to build the objects it describes."""

    def __init__(self, config: dict) -> None:
        self._catalog = catalog()
        validate(config, self._catalog)
        self.config = config

    def __getitem__(self, key: str):
        return self.config[key]

    def init_obj(self, key: str, *args, **kwargs):
        """Build `config[key]`: call its `type` from the catalog with its `args` (and `kwargs`)."""
        section = self.config[key]
        target = self.target(key)
        try:
            obj = target(*args, **{**section.get("args", {}), **kwargs})
        except Exception as exc:  # the message names the key; the constructor's own words say the rest
            raise ConfigError(f"config key '{key}' ({section['type']}): {first_line(exc)}") from None
        logger.info("Built %s from config key '%s' with args %s", section["type"], key, section.get("args", {}))
        return obj

    def target(self, key: str):
        """The class or function that `config[key]["type"]` names."""
        return self._catalog[key][self.config[key]["type"]]

    def function(self, key: str, name: str):
        """The function `name` from the catalog section `key` ('loss' or 'metrics')."""
        return self._catalog[key][name]


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2) like every other error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def from_args(args) -> tuple["ConfigParser", Path | None, dict | None]:
    """The validated config for train.py's options, and the checkpoint to resume from (path, content).

    The config comes from -c, else from the checkpoint given to -r; --lr, --bs and --set apply on top.
    """
    if args.config is None and args.resume in (None, "auto"):
        raise ConfigError("nothing to train: pass a config with -c config.json (--resume auto needs it too)")
    path = Path(args.resume) if args.resume not in (None, "auto") else None
    checkpoint = load_checkpoint(path) if path else None
    # a copy: the checkpoint keeps the config it was trained with, to compare on resume
    config = load_config(args.config) if args.config else copy.deepcopy(checkpoint["config"])
    if getattr(args, "lr", None) is not None:
        set_by_path(config, f"optimizer.args.lr={args.lr!r}")
    if getattr(args, "bs", None) is not None:
        set_by_path(config, f"data_loader.args.batch_size={args.bs}")
    for assignment in args.set:
        set_by_path(config, assignment)
    parsed = ConfigParser(config)
    if args.resume == "auto":
        path, checkpoint = find_latest(Path(config["trainer"]["save_dir"]) / config["name"])
        print(f"Resuming from {path} (the most trained checkpoint of the newest run)")
    return parsed, path, checkpoint


def open_run_dir(config: dict, resume_path: Path | None) -> Path:
    """The resumed run's folder, or a new one: also when resuming from a checkpoint that is not
    the run's latest, since continuing there would overwrite the later checkpoints."""
    if resume_path is not None and run_checkpoints(resume_path.parent)[-1:] == [resume_path]:
        run_dir = resume_path.parent
    else:
        run_dir = create_run_dir(config)
        (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    attach_log_file(run_dir / "train.log")
    logger.info("Run folder: %s%s", run_dir, f" (continuing from {resume_path})" if resume_path else "")
    return run_dir


def arg_parser(doc: str) -> OneLineArgumentParser:
    """The options train.py and test.py share; `doc` (the script's docstring) shows examples."""
    parser = OneLineArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="config file (.json, or .yaml / .yml)")
    parser.add_argument(
        "-r", "--resume", help="checkpoint (.pth) to continue from or evaluate; 'auto' (train.py, with -c): the latest"
    )
    parser.add_argument("-d", "--device", default="auto", help="auto (default: CUDA if available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. trainer.epochs=5"
    )
    return parser


def report(error: Exception) -> int:
    """Print a user error as one line and return the exit code for it."""
    print(f"error: {error}", file=sys.stderr)
    return 2
