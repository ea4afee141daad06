"""From a config file and command-line overrides to a validated config whose names are resolved.

    config = ConfigParser(load_config("config.json"))   # every mistake is one line, before any file is written
    model = config.init_obj("arch")                      # build what a section names

The rules for every key live in config.schema.json, which also gives editors completion; the file
reading and the rule checks are in utils/config_checks.py, the names are resolved here. A
section `{"type": NAME, "args": {...}}` names a class defined in any file of its folder (arch:
model/, data_loader: data_loader/, trainer.type: trainer/, trackers: logger/), a torch.optim
optimizer or scheduler, or anything importable by a dotted path (torchvision.models.resnet18).
`loss` and `metrics` name functions of model/loss.py and model/metric.py, or dotted paths; a
metric may also be a class (an epoch-level metric), built from `{"type": NAME, "args": {...}}`.

`python parse_config.py config.json` checks a config file against the schema alone (no torch).
"""

import copy
import functools
import importlib
import inspect
import json
import logging
import pkgutil
import sys
from pathlib import Path

from utils.config_checks import (
    check_arguments,
    check_is_mapping,
    check_metrics,
    check_schema,
    is_batch_mean,
    load_config,
    metric_name,
    no_addresses,
    set_by_path,
)
from utils.errors import ConfigError, did_you_mean, first_line, is_project_module, is_user_bug, report

logger = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parent
# config key -> where its short names are looked up (a project folder, or a module), and the class
# it must derive from ("module:Class"); trackers, data loaders and trainers named by dotted paths too.
NAMES = {
    "arch": ("model/", "torch.nn:Module"),
    "data_loader": ("data_loader/", "base:BaseDataLoader"),
    "trainer": ("trainer/", "base:BaseTrainer"),
    "trackers": ("logger/", "logger.trackers:Tracker"),
    "optimizer": ("torch.optim", "torch.optim:Optimizer"),
    "lr_scheduler": ("torch.optim.lr_scheduler", "torch.optim.lr_scheduler:LRScheduler"),
    "loss": ("model.loss", None),
    "metrics": ("model.metric", None),
    "sampler": ("optuna.samplers", "optuna.samplers:BaseSampler"),  # sweep.py's
    "pruner": ("optuna.pruners", "optuna.pruners:BasePruner"),
}
ANY_PATH_MUST_DERIVE = ("data_loader", "trainer", "trackers")  # the trainer relies on their methods


def _import(dotted: str):
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def catalog(key: str) -> dict:
    """The short names config key `key` may use, and what each refers to: the public classes (of
    the required base) or functions defined, not imported, in its folder's files or its module."""
    place, base = NAMES[key]
    if place.endswith("/"):
        folder = place.rstrip("/")
        modules = [
            _import_project_file(folder, info.name) for info in pkgutil.iter_modules([str(PROJECT_DIR / folder)])
        ]
    else:
        modules = [importlib.import_module(place)]
    base_class = _import(base) if base else None
    abstract = (base_class, _import("base:BaseModel") if key == "arch" else None)  # not to be named

    def wanted(obj, module) -> bool:
        if base_class is None:  # loss and metrics: functions (and metric classes) defined in that module
            kind = inspect.isfunction(obj) or (key == "metrics" and inspect.isclass(obj))
            return kind and obj.__module__ == module.__name__
        defined = getattr(obj, "__module__", None) == module.__name__ or not place.endswith("/")  # not imported
        return isinstance(obj, type) and issubclass(obj, base_class) and defined and not any(obj is a for a in abstract)

    found, where = {}, {}
    for module in modules:
        for name, obj in vars(module).items():
            if name.startswith("_") or not wanted(obj, module):
                continue
            if name in found and found[name] is not obj:
                raise ConfigError(
                    f"two definitions are named {name}, in {where[name]} and {module.__name__}; rename one"
                )
            found[name], where[name] = obj, module.__name__
    return found


def _import_project_file(folder: str, name: str):
    """A module of the project, imported: a bug in it shows its traceback; a package it needs that
    is not installed is one line naming the file."""
    try:
        return importlib.import_module(f"{folder}.{name}")
    except ModuleNotFoundError as exc:
        if (PROJECT_DIR / str(exc.name).split(".")[0]).exists():
            raise
        raise ConfigError(f"{folder}/{name}.py imports {exc.name!r}, which is not installed; install it") from None


def resolve(key: str, name: str, where: str, trusted: bool = True):
    """What `name`, at config key `where`, refers to: a name from `catalog(key)`, else a dotted
    import path (which, for data loaders, trainers and trackers, must derive from ours). Unless
    `trusted`, a dotted path must lead into this project: a config that came inside a checkpoint
    is data, and never chooses what is imported or called."""
    names = catalog(key)
    module_name, _, attribute = name.rpartition(".")
    if module_name == NAMES[key][0] and attribute in names:  # torch.optim.AdamW: the catalog's own
        name = attribute
    if name in names:
        return names[name]
    if not module_name:
        raise ConfigError(
            f"config key '{where}': unknown name {name!r}{did_you_mean(name, names)}; available: "
            f"{', '.join(names)}, or a dotted path such as torch.optim.AdamW"
        )
    if not trusted and not is_project_module(module_name):
        raise ConfigError(
            f"config key '{where}': the checkpoint's config names {name!r}, from outside this project, and a "
            "checkpoint never chooses code to import; pass your own config with -c, or add --trust-checkpoint "
            "if you trust whoever made the file"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"config key '{where}': cannot import {module_name!r} for {name!r} ({first_line(exc)})"
        ) from None
    if not hasattr(module, attribute):
        public = [n for n in vars(module) if not n.startswith("_")]
        raise ConfigError(f"config key '{where}': {module_name} has no {attribute!r}{did_you_mean(attribute, public)}")
    target, base = getattr(module, attribute), NAMES[key][1]
    if key in ANY_PATH_MUST_DERIVE and not (isinstance(target, type) and issubclass(target, _import(base))):
        raise ConfigError(
            f"config key '{where}': {target!r} is not a {base.partition(':')[2]} subclass; derive it from one"
        )
    return target


class ConfigParser(dict):
    """A validated config (a plain mapping of its keys) whose names are resolved: `targets` holds
    what each section's `type` names, `loss`, `metrics` and `trackers` the functions and classes.
    `trusted=False` (a checkpoint's config) allows no name from outside the project."""

    def __init__(self, config: dict, trusted: bool = True) -> None:
        check_schema(config)
        super().__init__(config)
        look_up = functools.partial(resolve, trusted=trusted)
        sections = [key for key in ("arch", "data_loader", "optimizer", "lr_scheduler", "trainer") if config.get(key)]
        self.targets = {key: look_up(key, config[key]["type"], f"{key}.type") for key in sections}
        for key in sections[:-1]:  # (the trainer's arguments are the code's)
            check_arguments(key, self.targets[key], config[key].get("args", {}))
        self.loss = look_up("loss", config["loss"], "loss")
        self.metrics = [self._metric(f"metrics[{i}]", entry, look_up) for i, entry in enumerate(config["metrics"])]
        check_metrics(self.metrics, config["metrics"])
        self.trackers = []
        for i, section in enumerate(config["trackers"]):
            self.trackers.append(look_up("trackers", section["type"], f"trackers[{i}].type"))
            check_arguments(f"trackers[{i}]", self.trackers[-1], section.get("args", {}))
        self._check_monitor()

    @classmethod
    def from_args(cls, args, checkpoint: dict | None = None) -> "ConfigParser":
        """The config of `-c`, else the one `checkpoint` was trained with (whose names must lead into
        this project, unless `--trust-checkpoint`); `--lr`, `--bs` and `--set` apply on top."""
        if args.config is None and checkpoint is None:
            raise ConfigError("nothing to do: pass a config with -c config.json (-r auto needs it too)")
        # a copy: the checkpoint keeps the config it was trained with, to compare with on resume
        config = load_config(args.config) if args.config else copy.deepcopy(checkpoint["config"])
        check_is_mapping(config)
        trusted = args.config is not None or getattr(args, "trust_checkpoint", False)
        if not trusted:
            no_addresses(config)  # (the checkpoint's own values: what --set adds is the user's choice)
        # (as JSON: --lr nan becomes NaN, a number that the checks refuse, not the text "nan")
        overrides = [f"optimizer.args.lr={json.dumps(args.lr)}"] if getattr(args, "lr", None) is not None else []
        overrides += [f"data_loader.args.batch_size={args.bs}"] if getattr(args, "bs", None) is not None else []
        for assignment in overrides + args.set:
            set_by_path(config, assignment)
        return cls(config, trusted=trusted)

    def init_obj(self, name: str, *args, **kwargs):
        """Build `config[name]`: call its `type` with `args`, then its config `args` and `kwargs`.
        pytorch-template's form, `init_obj(name, module, *args)`, works too; the module is not needed."""
        args = args[1:] if args and inspect.ismodule(args[0]) else args
        return _build(name, self[name], self.targets[name], *args, **kwargs)

    def init_ftn(self, name: str, *args, **kwargs):
        """`config[name]`'s `type` with its arguments bound, to call later (pytorch-template's API)."""
        args = args[1:] if args and inspect.ismodule(args[0]) else args
        return functools.partial(self.targets[name], *args, **{**self[name].get("args", {}), **kwargs})

    def init_trackers(self) -> list:
        """The trackers of config key `trackers`, built from their args."""
        sections = enumerate(zip(self.trackers, self["trackers"], strict=True))
        return [_build(f"trackers[{i}]", section, target) for i, (target, section) in sections]

    @staticmethod
    def _metric(where: str, entry, look_up):
        """A batch-mean function as it is (with the entry's args set); a class (an epoch-level
        metric) built with them."""
        section = {"type": entry} if isinstance(entry, str) else entry
        target = look_up("metrics", section["type"], f"{where}.type" if section is entry else where)
        if isinstance(entry, str) and not inspect.isclass(target):
            return target
        args, batch_mean = section.get("args", {}), is_batch_mean(target)
        check_arguments(where, target, args, supplied=("output", "target") if batch_mean else ())
        if batch_mean:  # with arguments set: {"type": "top_k_acc", "args": {"k": 5}}
            return functools.update_wrapper(functools.partial(target, **args), target)
        return _build(where, section, target)

    def _check_monitor(self) -> None:
        monitor, scheduler = self["trainer"]["monitor"], self.get("lr_scheduler") or {}
        if monitor == "off":
            return
        names = ["loss", *map(metric_name, self.metrics), *getattr(self.targets["trainer"], "extra_metrics", ())]
        names += ["grad_norm"] if self["trainer"]["clip_grad_norm"] else []
        split = self["data_loader"].get("args", {}).get("validation_split", 0)
        choices = names + [f"val_{n}" for n in names] if split else names
        mode, metric = monitor.split()
        if scheduler.get("type") == "ReduceLROnPlateau" and scheduler.get("args", {}).get("mode", "min") != mode:
            raise ConfigError(
                f"config key 'lr_scheduler.args.mode': ReduceLROnPlateau follows {monitor!r}; set it to {mode!r}"
            )
        if metric not in choices:
            hint = "" if split else " (val_* metrics need data_loader.args.validation_split > 0)"
            raise ConfigError(
                f"config key 'trainer.monitor': unknown metric {metric!r}{did_you_mean(metric, choices)}; "
                f"available: {', '.join(choices)}{hint}"
            )


def _build(where: str, section: dict, target, *args, **kwargs):
    """Call `target` with `args`, then the section's config `args` and `kwargs`; a value the
    library refuses is one line naming config key `where`."""
    try:
        obj = target(*args, **{**section.get("args", {}), **kwargs})
    except Exception as exc:
        if is_user_bug(exc):
            raise  # a bug in the project's own code: keep the traceback that points at it
        raise ConfigError(f"config key '{where}' ({section['type']}): {first_line(exc)}") from None
    logger.info("Built %s from config key '%s' with args %s", section["type"], where, section.get("args", {}))
    return obj


if __name__ == "__main__":
    try:
        for file in sys.argv[1:]:
            check_schema(load_config(file))
            print(f"{file}: follows config.schema.json")
    except ConfigError as error:
        sys.exit(report(error))
