"""From a config file and command-line overrides to a validated config whose names are resolved.

    config = ConfigParser(load_config("config.json"))   # every mistake is one line, before any file is written
    model = config.init_obj("arch")                      # build what a section names

The rules for every key live in config.schema.json, which also gives editors completion. A
section `{"type": NAME, "args": {...}}` names a class defined in any file of its folder (arch:
model/, data_loader: data_loader/, trainer.type: trainer/, trackers: logger/), a torch.optim
optimizer or scheduler, or anything importable by a dotted path (torchvision.models.resnet18).
`loss` and `metrics` name functions of model/loss.py and model/metric.py, or dotted paths.

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

import jsonschema

from utils.errors import ConfigError, did_you_mean, first_line, is_user_bug, report, section_of

logger = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parent
SCHEMA_FILE = PROJECT_DIR / "config.schema.json"
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
# Arguments that the code passes itself; the config must not set them.
SUPPLIED_BY_CODE = {"optimizer": {"params"}, "lr_scheduler": {"optimizer"}}
BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def load_config(path: str | Path) -> dict:
    """Read a JSON or YAML config (by extension): syntax errors name the line, a key given twice
    is refused (both formats would keep the last one), the editor-only `$schema` is dropped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass an existing file with -c")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: Windows editors may add a byte-order mark
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    config = _parse_yaml(text, path) if path.suffix.lower() in (".yaml", ".yml") else _parse_json(text, path)
    if isinstance(config, dict):
        config.pop("$schema", None)
    return config


def _parse_json(text: str, path: Path):
    def no_duplicates(pairs):
        keys = [key for key, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise ConfigError(f"{path}: key {key!r} appears twice in the same object; keep one")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None


def _parse_yaml(text: str, path: Path):
    """YAML 1.2 through ruamel.yaml's safe loader: plain data only, a key given twice is refused,
    `3e-4` is a number and `off` stays the text "off"."""
    try:
        from ruamel.yaml import YAML, YAMLError  # only YAML configs need it
    except ImportError:
        raise ConfigError(f"{path}: reading YAML needs ruamel.yaml; pip install ruamel.yaml") from None
    try:
        config = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or first_line(exc)
        if "duplicate key" in problem:
            problem = f"key {problem.split(chr(34))[1]!r} appears twice in the same mapping; keep one"
        raise ConfigError(f"{path}:{f'{mark.line + 1}:' if mark else ''} {problem}") from None
    return config


def set_by_path(config: dict, assignment: str) -> None:
    """Apply one `--set a.b.c=value` (value read as JSON, else kept as a string) to `config`."""
    dotted, sep, raw = assignment.partition("=")
    if not sep or not dotted:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set trainer.epochs=5")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    section = section_of(config, dotted, f"--set {assignment!r}")
    section[dotted.rpartition(".")[2]] = value  # a new key is checked with the rest: schema, or signature


def check_is_mapping(config) -> None:
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys (a JSON object), got {type(config).__name__}")
    bad = next((key for key in config if not isinstance(key, str)), None)
    if bad is not None:  # (YAML allows them)
        raise ConfigError(f"a config key must be text, got {bad!r}")


def check_schema(config) -> None:
    """Raise `ConfigError` for the key that breaks a rule of config.schema.json, if any; then fill
    in the defaults the schema gives for the keys left out."""
    check_is_mapping(config)
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        for node, rules in ((config, schema), (config["trainer"], schema["properties"]["trainer"])):
            for key, rule in rules["properties"].items():
                if "default" in rule:
                    node.setdefault(key, rule["default"])
        return
    while error.parent is not None:  # a branch of "oneOf": describe every alternative
        error = error.parent
    where = error.json_path.removeprefix("$").lstrip(".")  # "$.trainer.epochs" -> "trainer.epochs"
    if error.validator == "additionalProperties":
        allowed = list(error.schema["properties"])
        extra = next(key for key in error.instance if key not in allowed)
        key = f"{where}.{extra}".lstrip(".")
        raise ConfigError(f"config key '{key}' is unknown{did_you_mean(extra, allowed)}; allowed: {', '.join(allowed)}")
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in error.instance)
        raise ConfigError(f"config key '{f'{where}.{missing}'.lstrip('.')}' is missing; add it")
    raise ConfigError(f"config key '{where}': got {error.instance!r}, expected {_expected(error.schema)}")


def _expected(schema: dict) -> str:
    """What `schema` allows, in a few words: "an integer >= 1", "null or a number > 0"."""
    if "patternErrorMessage" in schema:  # the same words editors show (VS Code reads this key)
        return schema["patternErrorMessage"]
    if "enum" in schema:
        shown = [json.dumps(value) for value in schema["enum"]]
        return ", ".join(shown[:-1]) + " or " + shown[-1]
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(_expected(option) for option in schema.get("oneOf", schema.get("anyOf")))
    kind = schema.get("type")
    if kind in ("integer", "number"):
        bounds = [f"{sign} {schema[key]}" for key, sign in BOUNDS.items() if key in schema]
        return " ".join(["an integer" if kind == "integer" else "a number", " and ".join(bounds)]).strip()
    words = {"null": "null", "boolean": "true or false", "string": "a non-empty string", "object": "an object"}
    return words.get(kind, 'a list of names like ["accuracy"]' if kind == "array" else "a valid value")


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
        if base_class is None:  # loss and metrics: functions defined in that module
            return inspect.isfunction(obj) and obj.__module__ == module.__name__
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


def resolve(key: str, name: str, where: str):
    """What `name`, at config key `where`, refers to: a name from `catalog(key)`, else a dotted
    import path (which, for data loaders, trainers and trackers, must derive from ours)."""
    names = catalog(key)
    if name in names:
        return names[name]
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        raise ConfigError(
            f"config key '{where}': unknown name {name!r}{did_you_mean(name, names)}; available: "
            f"{', '.join(names)}, or a dotted path such as torch.optim.AdamW"
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


def check_arguments(where: str, target, args: dict) -> None:
    """Bind `args` to the signature of `target`, so that typos fail before anything is built."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have no signature to compare with
        return
    supplied = SUPPLIED_BY_CODE.get(where, set())
    named = [n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = [n for n in named if n not in supplied]
    title = getattr(target, "__name__", target)
    for name in args:
        if name in supplied:
            raise ConfigError(f"config key '{where}.args.{name}' is set by the code; remove it from the config")
    try:
        signature.bind_partial(*([None] * len(supplied)), **args)
    except TypeError as exc:
        name = next((n for n in args if n not in named), None)
        if name is None:
            raise ConfigError(f"config key '{where}.args': {title}: {first_line(exc)}") from None
        raise ConfigError(
            f"config key '{where}.args.{name}': {title} has no argument {name!r}{did_you_mean(name, accepted)}; "
            f"it accepts: {', '.join(accepted)}"
        ) from None
    empty = inspect.Parameter.empty
    missing = [n for n in accepted if signature.parameters[n].default is empty and n not in args]
    if missing:
        raise ConfigError(f"config key '{where}.args.{missing[0]}' is missing; {title} requires it")


class ConfigParser(dict):
    """A validated config (a plain mapping of its keys) whose names are resolved: `targets` holds
    what each section's `type` names, `loss`, `metrics` and `trackers` the functions and classes."""

    def __init__(self, config: dict) -> None:
        check_schema(config)
        super().__init__(config)
        sections = [key for key in ("arch", "data_loader", "optimizer", "lr_scheduler", "trainer") if config.get(key)]
        self.targets = {key: resolve(key, config[key]["type"], f"{key}.type") for key in sections}
        for key in sections[:-1]:  # (the trainer's arguments are the code's)
            check_arguments(key, self.targets[key], config[key].get("args", {}))
        self.loss = resolve("loss", config["loss"], "loss")
        self.metrics = [resolve("metrics", name, f"metrics[{i}]") for i, name in enumerate(config["metrics"])]
        self.trackers = []
        for i, section in enumerate(config["trackers"]):
            self.trackers.append(resolve("trackers", section["type"], f"trackers[{i}].type"))
            check_arguments(f"trackers[{i}]", self.trackers[-1], section.get("args", {}))
        self._check_monitor()

    @classmethod
    def from_args(cls, args, checkpoint: dict | None = None) -> "ConfigParser":
        """The config of `-c`, else the one `checkpoint` was trained with; `--lr`, `--bs` and
        `--set` apply on top."""
        if args.config is None and checkpoint is None:
            raise ConfigError("nothing to do: pass a config with -c config.json (-r auto needs it too)")
        # a copy: the checkpoint keeps the config it was trained with, to compare with on resume
        config = load_config(args.config) if args.config else copy.deepcopy(checkpoint["config"])
        check_is_mapping(config)
        overrides = [f"optimizer.args.lr={args.lr!r}"] if getattr(args, "lr", None) is not None else []
        overrides += [f"data_loader.args.batch_size={args.bs}"] if getattr(args, "bs", None) is not None else []
        for assignment in overrides + args.set:
            set_by_path(config, assignment)
        return cls(config)

    def init_obj(self, name: str, *args, **kwargs):
        """Build `config[name]`: call its `type` with `args`, then its config `args` and `kwargs`.
        pytorch-template's form, `init_obj(name, module, *args)`, works too; the module is not needed."""
        args = args[1:] if args and inspect.ismodule(args[0]) else args
        section = self[name]
        try:
            obj = self.targets[name](*args, **{**section.get("args", {}), **kwargs})
        except Exception as exc:
            if is_user_bug(exc):
                raise  # a bug in the project's own code: keep the traceback that points at it
            raise ConfigError(f"config key '{name}' ({section['type']}): {first_line(exc)}") from None
        logger.info("Built %s from config key '%s' with args %s", section["type"], name, section.get("args", {}))
        return obj

    def init_ftn(self, name: str, *args, **kwargs):
        """`config[name]`'s `type` with its arguments bound, to call later (pytorch-template's API)."""
        args = args[1:] if args and inspect.ismodule(args[0]) else args
        return functools.partial(self.targets[name], *args, **{**self[name].get("args", {}), **kwargs})

    def init_trackers(self) -> list:
        """The trackers of config key `trackers`, built from their args."""
        built = []
        for i, (target, section) in enumerate(zip(self.trackers, self["trackers"], strict=True)):
            try:
                built.append(target(**section.get("args", {})))
            except Exception as exc:
                if is_user_bug(exc):
                    raise
                raise ConfigError(f"config key 'trackers[{i}]' ({section['type']}): {first_line(exc)}") from None
            logger.info("Built %s from config key 'trackers[%d]'", section["type"], i)
        return built

    def _check_monitor(self) -> None:
        monitor, scheduler = self["trainer"]["monitor"], self.get("lr_scheduler") or {}
        if monitor == "off":
            return
        names = ["loss", *(fn.__name__ for fn in self.metrics), *getattr(self.targets["trainer"], "extra_metrics", ())]
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


if __name__ == "__main__":
    try:
        for file in sys.argv[1:]:
            check_schema(load_config(file))
            print(f"{file}: follows config.schema.json")
    except ConfigError as error:
        sys.exit(report(error))
