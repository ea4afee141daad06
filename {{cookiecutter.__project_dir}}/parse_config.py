"""From a config file and command-line overrides to a validated config, and from it to objects.

    config = ConfigParser(load_config("config.json"))   # every mistake is one line, before any file is written
    model = config.init_obj("arch")                      # build what a section names

The rules for every key live in config.schema.json, which also gives editors completion. A
section `{"type": NAME, "args": {...}}` names a class defined in any file of its folder (arch:
model/, data_loader: data_loader/, trainer.type: trainer/, trackers: logger/), a torch.optim
optimizer or scheduler, or anything importable by a dotted path (torchvision.models.resnet18). `loss` and `metrics` name
functions of model/loss.py and model/metric.py, or dotted paths (torch.nn.functional.nll_loss).

`python parse_config.py config.json` checks a config file against the schema alone (no torch).
"""

import copy
import difflib
import functools
import importlib
import inspect
import json
import logging
import pkgutil
import re
import sys
import traceback
from pathlib import Path

import jsonschema

from utils.errors import ConfigError, UserError, first_line, report

logger = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parent
SCHEMA_FILE = PROJECT_DIR / "config.schema.json"
# Arguments that the code passes itself; the config must not set them.
SUPPLIED_BY_CODE = {"optimizer": {"params"}, "lr_scheduler": {"optimizer"}}
INSTALLED = {"site-packages", "dist-packages"}  # a virtual environment may live inside the project
BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def load_config(path: str | Path) -> dict:
    """Read a JSON or YAML config (by extension); syntax errors name the line and column, a key
    given twice is refused (both parsers would keep the last), the editor-only `$schema` is dropped."""
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


def _parse_yaml(text: str, path: Path):
    try:
        import yaml  # only YAML configs need PyYAML
    except ImportError:
        raise ConfigError(f"{path}: reading YAML needs PyYAML; pip install pyyaml") from None

    class StrictLoader(yaml.SafeLoader):
        """Plain data only; a key given twice is refused, and 3e-4 is a number (YAML 1.1 wants 3.0e-4)."""

    def no_duplicates(loader, node):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden
                continue
            line, scalar = key_node.start_mark.line + 1, isinstance(key_node, yaml.ScalarNode)
            key = loader.construct_object(key_node) if scalar else None
            if not isinstance(key, str):
                raise ConfigError(
                    f"{path}:{line}: a config key must be text, got {repr(key) if scalar else 'a ' + key_node.id}"
                )
            if key in seen:
                raise ConfigError(f"{path}:{line}: key {key!r} appears twice in the same mapping; keep one")
            seen.add(key)
        return loader.construct_mapping(node)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    exponent = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", exponent, list("-+0123456789."))
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass: plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {first_line(exc)}") from None


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


def section_of(config: dict, dotted: str, where: str) -> dict:
    """The mapping that holds the value of `dotted` (a.b.c: config["a"]["b"]); the value itself may
    be missing, the sections above it may not. `where` begins the error message."""
    *parents, _ = dotted.split(".")
    node, walked = config, []
    for key in parents:
        walked.append(key)
        if not isinstance(node.get(key), dict):
            choices = [k for k, v in node.items() if isinstance(v, dict)]
            raise ConfigError(f"{where}: no section '{'.'.join(walked)}'{did_you_mean(key, choices)}")
        node = node[key]
    return node


def did_you_mean(word: str, choices) -> str:
    """A hint naming the closest of `choices` (the same name in other case first), or ''."""
    choices = [str(c) for c in choices]
    same_case = [c for c in choices if c.lower() == str(word).lower()]
    close = same_case or difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_is_mapping(config) -> None:
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys (a JSON object), got {type(config).__name__}")


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
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema["properties"])
        extra = next(key for key in error.instance if key not in allowed)
        hint = did_you_mean(extra, allowed)
        raise ConfigError(f"config key '{_dotted([*path, extra])}' is unknown{hint}; allowed: {', '.join(allowed)}")
    if error.validator == "required":
        missing = next(key for key in error.validator_value if key not in error.instance)
        raise ConfigError(f"config key '{_dotted([*path, missing])}' is missing; add it")
    expected = _expected(error.schema)
    hint = '; in YAML, quote it: "off"' if isinstance(error.instance, bool) and '"off"' in expected else ""
    raise ConfigError(f"config key '{_dotted(path)}': got {error.instance!r}, expected {expected}{hint}")


def _dotted(path: list) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


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


def _project_modules(folder: str) -> list:
    """Every module in the project folder `folder`, imported. An import that fails with a bug
    shows its traceback; a package that is not installed is one line naming the file."""
    modules = []
    for info in pkgutil.iter_modules([str(PROJECT_DIR / folder)]):
        try:
            modules.append(importlib.import_module(f"{folder}.{info.name}"))
        except ModuleNotFoundError as exc:
            if (PROJECT_DIR / str(exc.name).split(".")[0]).exists():
                raise
            raise ConfigError(
                f"{folder}/{info.name}.py imports {exc.name!r}, which is not installed; install it"
            ) from None
    return modules


def _defined_in(modules: list, keep) -> dict:
    """The public classes or functions that `modules` define (not import) and `keep` accepts."""
    found, where = {}, {}
    for module in modules:
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__ or not keep(obj):
                continue
            if name in found and found[name] is not obj:
                raise ConfigError(
                    f"two definitions are named {name}, in {where[name]} and {module.__name__}; rename one"
                )
            found[name], where[name] = obj, module.__name__
    return found


def catalog(key: str) -> dict:
    """The short names config key `key` may use, and what each refers to."""
    import torch  # here, not at the top: checking a file against the schema needs no torch

    from base import BaseDataLoader, BaseModel, BaseTrainer

    def subclass_of(base):
        return lambda obj: isinstance(obj, type) and issubclass(obj, base) and obj not in (base, BaseModel)

    if key == "arch":
        return _defined_in(_project_modules("model"), subclass_of(torch.nn.Module))
    if key == "trackers":
        from logger.tracker import Tracker

        return _defined_in(_project_modules("logger"), subclass_of(Tracker))
    if key in ("data_loader", "trainer"):
        return _defined_in(_project_modules(key), subclass_of(BaseDataLoader if key == "data_loader" else BaseTrainer))
    if key == "optimizer":
        return {n: c for n, c in vars(torch.optim).items() if subclass_of(torch.optim.Optimizer)(c)}
    if key == "lr_scheduler":
        scheduler = torch.optim.lr_scheduler
        return {n: c for n, c in vars(scheduler).items() if subclass_of(scheduler.LRScheduler)(c)}
    module = importlib.import_module("model.loss" if key == "loss" else "model.metric")
    return _defined_in([module], inspect.isfunction)


def resolve(key: str, name: str, where: str):
    """What `name`, at config key `where`, refers to: a name from `catalog(key)`, else a dotted
    import path."""
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
    return getattr(module, attribute)


def _check_base_classes(targets: dict) -> None:
    """A data loader or trainer named by a dotted path must still be one of ours: the trainer
    relies on their methods."""
    from base import BaseDataLoader, BaseTrainer

    for key, base in (("data_loader", BaseDataLoader), ("trainer", BaseTrainer)):
        if not (isinstance(targets[key], type) and issubclass(targets[key], base)):
            raise ConfigError(
                f"config key '{key}.type': {targets[key]!r} is not a {base.__name__} subclass; derive it from one"
            )


def check_arguments(key: str, target, args: dict) -> None:
    """Compare `args` with the signature of `target`, so typos fail before anything is built."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # some builtins have no signature to compare with
        return
    supplied = SUPPLIED_BY_CODE.get(key, set())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"]
    accepted = [n for n in named if n not in supplied]
    for name in args:
        if name in supplied:
            raise ConfigError(f"config key '{key}.args.{name}' is set by the code; remove it from the config")
        if name not in named and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise ConfigError(
                f"config key '{key}.args.{name}': {getattr(target, '__name__', target)} has no "
                f"argument {name!r}{did_you_mean(name, accepted)}; it accepts: {', '.join(accepted)}"
            )
    for name in accepted:
        if params[name].default is inspect.Parameter.empty and name not in args:
            raise ConfigError(
                f"config key '{key}.args.{name}' is missing; {getattr(target, '__name__', target)} requires it"
            )


class ConfigParser:
    """A validated config, and the means to build the objects it describes."""

    def __init__(self, config: dict) -> None:
        check_schema(config)
        self.config = config
        sections = [key for key in ("arch", "data_loader", "optimizer", "lr_scheduler") if config.get(key)]
        self.targets = {key: resolve(key, config[key]["type"], f"{key}.type") for key in sections}
        self.targets["trainer"] = resolve("trainer", config["trainer"]["type"], "trainer.type")
        _check_base_classes(self.targets)
        for key in sections:
            check_arguments(key, self.targets[key], config[key].get("args", {}))
        self.loss = resolve("loss", config["loss"], "loss")
        self.metrics = [resolve("metrics", name, f"metrics[{i}]") for i, name in enumerate(config["metrics"])]
        self.trackers = [
            resolve("trackers", t["type"], f"trackers[{i}].type") for i, t in enumerate(config["trackers"])
        ]
        self._check_trackers()
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

    def __getitem__(self, key: str):
        return self.config[key]

    def init_obj(self, name: str, *args, **kwargs):
        """Build `config[name]`: call its `type` with `args`, then its config `args` and `kwargs`.

        pytorch-template's form, `init_obj(name, module, *args)`, works too; the module is not needed.
        """
        if args and inspect.ismodule(args[0]):
            args = args[1:]
        section = self.config[name]
        try:
            obj = self.targets[name](*args, **{**section.get("args", {}), **kwargs})
        except Exception as exc:
            if isinstance(exc, UserError) or _raised_in_project(exc):
                raise  # a bug in the project's own code: keep the traceback that points at it
            raise ConfigError(f"config key '{name}' ({section['type']}): {first_line(exc)}") from None
        logger.info("Built %s from config key '%s' with args %s", section["type"], name, section.get("args", {}))
        return obj

    def init_ftn(self, name: str, *args, **kwargs):
        """`config[name]`'s `type` with its arguments bound, to call later (pytorch-template's API)."""
        if args and inspect.ismodule(args[0]):
            args = args[1:]
        return functools.partial(self.targets[name], *args, **{**self.config[name].get("args", {}), **kwargs})

    def build_data_loader(self, training: bool = True):
        """The training data, or (`training=False`) every sample of the test split."""
        if training:
            return self.init_obj("data_loader")
        params = inspect.signature(self.targets["data_loader"]).parameters
        if "training" not in params:
            raise ConfigError(
                f"{self['data_loader']['type']} has no 'training' argument, so test.py cannot ask it "
                "for the test split; add training=True to its __init__ (README: Use your own dataset)"
            )
        no_split = {"validation_split": 0} if "validation_split" in params else {}  # it is for training data
        return self.init_obj("data_loader", training=False, **no_split).all_samples()

    def build_trackers(self) -> list:
        """The trackers of config key `trackers`, built from their args."""
        built = []
        for i, (target, section) in enumerate(zip(self.trackers, self.config["trackers"], strict=True)):
            try:
                built.append(target(**section.get("args", {})))
            except Exception as exc:
                if isinstance(exc, UserError) or _raised_in_project(exc):
                    raise
                raise ConfigError(f"config key 'trackers[{i}]' ({section['type']}): {first_line(exc)}") from None
            logger.info("Built %s from config key 'trackers[%d]'", section["type"], i)
        return built

    def build_trainer(self, device, data_loader, tracking: bool = True):
        """The model, optimizer, scheduler and trainer the config describes, training on `data_loader`;
        `tracking=False` leaves out the config's trackers (the smoke run's)."""
        import torch

        model = self.init_obj("arch")
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(
                f"config key 'arch.type': {self['arch']['type']} made a {type(model).__name__}, not a torch.nn.Module"
            )
        model = model.to(device)
        logger.info("%s", model)
        check_num_classes(data_loader, model)
        optimizer = self.init_obj("optimizer", [p for p in model.parameters() if p.requires_grad])
        scheduler = self.init_obj("lr_scheduler", optimizer) if self.config.get("lr_scheduler") else None
        valid, trainer_class = data_loader.split_validation(), self.targets["trainer"]
        trainer = trainer_class(
            model, self.loss, self.metrics, optimizer, self.config, device, data_loader, valid, scheduler
        )
        trainer.trackers.trackers += self.build_trackers() if tracking else []
        return trainer

    def _check_trackers(self) -> None:
        from logger.tracker import Tracker

        for i, (target, section) in enumerate(zip(self.trackers, self.config["trackers"], strict=True)):
            if not (isinstance(target, type) and issubclass(target, Tracker)):
                raise ConfigError(
                    f"config key 'trackers[{i}].type': {target!r} is not a Tracker subclass; derive it from one"
                )
            check_arguments(f"trackers[{i}]", target, section.get("args", {}))

    def _check_monitor(self) -> None:
        monitor = self.config["trainer"]["monitor"]
        if monitor == "off":
            return
        names = ["loss", *(fn.__name__ for fn in self.metrics), *getattr(self.targets["trainer"], "extra_metrics", ())]
        names += ["grad_norm"] if self.config["trainer"]["clip_grad_norm"] else []
        split = self.config["data_loader"].get("args", {}).get("validation_split", 0)
        choices = names + [f"val_{n}" for n in names] if split else names
        mode, metric = monitor.split()
        plateau = self.config.get("lr_scheduler") and self.config["lr_scheduler"]["type"] == "ReduceLROnPlateau"
        if plateau and self.config["lr_scheduler"].get("args", {}).get("mode", "min") != mode:
            raise ConfigError(
                f"config key 'lr_scheduler.args.mode': ReduceLROnPlateau follows {monitor!r}; set it to {mode!r}"
            )
        if metric not in choices:
            hint = "" if split else " (val_* metrics need data_loader.args.validation_split > 0)"
            raise ConfigError(
                f"config key 'trainer.monitor': unknown metric {metric!r}{did_you_mean(metric, choices)}; "
                f"available: {', '.join(choices)}{hint}"
            )


def check_num_classes(data_loader, model) -> None:
    """When the data names its classes, a model with a `num_classes` attribute must match it."""
    classes, outputs = getattr(data_loader, "classes", None), getattr(model, "num_classes", None)
    if classes is not None and isinstance(outputs, int) and outputs != len(classes):
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ConfigError(
            f"config key 'arch.args.num_classes' is {outputs} but the data has {len(classes)} classes "
            f"({shown}); set it to {len(classes)}"
        )


def _raised_in_project(exc: BaseException) -> bool:
    """True when the exception passed through a file of this project (your model, your loader):
    a bug there keeps its traceback. A library refusing a value the config gave it directly (an
    optimizer's learning rate, say) is one line."""
    for frame in traceback.extract_tb(exc.__traceback__)[1:]:  # [0] is init_obj itself
        path = Path(frame.filename).resolve()
        if not frame.filename.startswith("<") and path.is_relative_to(PROJECT_DIR) and not INSTALLED & set(path.parts):
            return True
    return False


if __name__ == "__main__":
    try:
        for file in sys.argv[1:]:
            check_schema(load_config(file))
            print(f"{file}: follows config.schema.json")
    except ConfigError as error:
        sys.exit(report(error))
