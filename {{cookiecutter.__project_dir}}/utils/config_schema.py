"""What a valid config looks like: every key, the values it takes, and one-line errors.

`check_config` runs before anything is built or written, so a broken config costs nothing.
"""

import difflib
import math

from utils.errors import ConfigError


def did_you_mean(word: str, choices) -> str:
    """A hint naming the closest of `choices` (same name in other case first), or ''."""
    choices = [str(c) for c in choices]
    same_case = [c for c in choices if c.lower() == str(word).lower()]
    close = same_case or difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _int(minimum: int):
    def check(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= minimum

    return check, f"an integer >= {minimum}"


def _number(low: float, high: float):
    def check(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v < high

    return check, f"a number in [{low}, {high})"


_BOOL = (lambda v: isinstance(v, bool), "true or false")
_TEXT = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
WINDOWS_DEVICE_NAMES = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}


def _folder_name(v) -> bool:
    """A name that makes a valid folder on Linux, macOS and Windows alike."""
    return (
        isinstance(v, str)
        and v.strip() == v != ""
        and not v.endswith(".")
        and not any(c in v for c in '/\\:*?"<>|')
        and v.split(".")[0].upper() not in WINDOWS_DEVICE_NAMES
    )


_NAME = (_folder_name, 'a folder name: no path separators, :*?"<>|, end spaces or dots, nor CON/NUL/...')
_SECTION = (lambda v: isinstance(v, dict), 'an object like {"type": "Name", "args": {...}}')
_NAMES = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), 'a list of names like ["accuracy"]')

# key: (check, what is allowed, required)
TOP_LEVEL = {
    "name": (*_NAME, True),
    "seed": (lambda v: _int(0)[0](v) and v < 2**32, "an integer from 0 to 2**32 - 1", True),
    "arch": (*_SECTION, True),
    "data_loader": (*_SECTION, True),
    "optimizer": (*_SECTION, True),
    "loss": (*_TEXT, True),
    "metrics": (*_NAMES, True),
    "lr_scheduler": (lambda v: v is None or isinstance(v, dict), 'null or {"type": "Name", "args": {...}}', False),
    "trainer": (lambda v: isinstance(v, dict), "an object of trainer settings", True),
}
TRAINER = {
    "epochs": (*_int(1), True),
    "save_dir": (*_TEXT, True),
    "save_period": (*_int(1), False),
    "keep_last": (*_int(2), False),
    "verbosity": (lambda v: v in (0, 1, 2) and not isinstance(v, bool), "0, 1 or 2", False),
    "monitor": (lambda v: isinstance(v, str), '"off", or "min <metric>" / "max <metric>"', False),
    "early_stop": (*_int(0), False),
    "tensorboard": (*_BOOL, False),
    "amp": (lambda v: v in ("off", "bf16", "fp16"), '"off", "bf16" or "fp16"', False),
    "accumulate": (*_int(1), False),
    "clip_grad_norm": (
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf),
        "null or a number > 0",
        False,
    ),
    "compile": (*_BOOL, False),
}
DATA_LOADER_ARGS = {
    "batch_size": (*_int(1), False),
    "validation_split": (*_number(0.0, 1.0), False),
    "num_workers": (*_int(0), False),
    "shuffle": (*_BOOL, False),
}
SECTION_KEYS = {"type", "args"}


def _check_keys(values: dict, rules: dict, prefix: str) -> None:
    for key, value in values.items():
        if key not in rules:
            raise ConfigError(
                f"config key '{prefix}{key}' is unknown{did_you_mean(key, rules)}; allowed: {', '.join(rules)}"
            )
        check, allowed, _ = rules[key]
        if not check(value):
            # YAML reads a bare off/on/yes/no as a boolean
            hint = '; in YAML, quote it: "off"' if isinstance(value, bool) and '"off"' in allowed else ""
            raise ConfigError(f"config key '{prefix}{key}': got {value!r}, expected {allowed}{hint}")
    for key, (_, allowed, required) in rules.items():
        if required and key not in values:
            raise ConfigError(f"config key '{prefix}{key}' is missing; add it ({allowed})")


def _check_section(config: dict, key: str, catalog: dict) -> None:
    section = config[key]
    for name in section:
        if name not in SECTION_KEYS:
            raise ConfigError(
                f"config key '{key}.{name}' is unknown{did_you_mean(name, SECTION_KEYS)}; allowed: type, args"
            )
    if not isinstance(section.get("type"), str):
        raise ConfigError(
            f"config key '{key}.type': got {section.get('type')!r}, expected one of: {', '.join(catalog)}"
        )
    if section["type"] not in catalog:
        raise ConfigError(
            f"config key '{key}.type': unknown name {section['type']!r}{did_you_mean(section['type'], catalog)}; "
            f"available: {', '.join(catalog)}"
        )
    if not isinstance(section.get("args", {}), dict):
        raise ConfigError(f"config key '{key}.args': got {section['args']!r}, expected an object of arguments")


def _check_monitor(config: dict) -> None:
    monitor = config["trainer"].get("monitor", "off")
    if monitor == "off":
        return
    parts = monitor.split()
    metrics = ["loss", *config["metrics"]]
    has_validation = config["data_loader"].get("args", {}).get("validation_split", 0) > 0
    choices = metrics + [f"val_{m}" for m in metrics] if has_validation else metrics
    if len(parts) != 2 or parts[0] not in ("min", "max"):
        raise ConfigError(
            f'config key \'trainer.monitor\': got {monitor!r}, expected "off" or "min <metric>" / "max <metric>"'
        )
    if parts[1] not in choices:
        hint = "" if has_validation else " (val_* metrics need data_loader.args.validation_split > 0)"
        raise ConfigError(
            f"config key 'trainer.monitor': unknown metric {parts[1]!r}{did_you_mean(parts[1], choices)}; "
            f"available: {', '.join(choices)}{hint}"
        )


def check_config(config: dict, catalog: dict) -> None:
    """Raise `ConfigError` for the first problem found, naming the key path and what is allowed.

    `catalog` maps each section (arch, optimizer, ...) to the names it may use as `type`.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys (a JSON object), got {type(config).__name__}")
    _check_keys(config, TOP_LEVEL, "")
    _check_keys(config["trainer"], TRAINER, "trainer.")
    for key in ("arch", "data_loader", "optimizer", "lr_scheduler"):
        if config.get(key) is not None:
            _check_section(config, key, catalog[key])
    loader_args = config["data_loader"].get("args", {})
    _check_keys({k: v for k, v in loader_args.items() if k in DATA_LOADER_ARGS}, DATA_LOADER_ARGS, "data_loader.args.")
    if config["loss"] not in catalog["loss"]:
        raise ConfigError(
            f"config key 'loss': unknown function {config['loss']!r}{did_you_mean(config['loss'], catalog['loss'])}; "
            f"available: {', '.join(catalog['loss'])}"
        )
    for i, name in enumerate(config["metrics"]):
        if name not in catalog["metrics"]:
            raise ConfigError(
                f"config key 'metrics[{i}]': unknown metric {name!r}{did_you_mean(name, catalog['metrics'])}; "
                f"available: {', '.join(catalog['metrics'])}"
            )
    if len(set(config["metrics"])) != len(config["metrics"]):
        raise ConfigError(f"config key 'metrics': {config['metrics']!r} names a metric twice; list each once")
    _check_monitor(config)
