"""The config's `sweep.params`: which config keys sweep.py varies, and how each value is drawn.

"sweep": {"params": {
    "optimizer.args.lr": {"type": "log_uniform", "low": 0.0001, "high": 0.01},
    "arch.args.dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
    "arch.args.channels": {"type": "int", "low": 16, "high": 64, "step": 16},
    "data_loader.args.batch_size": {"type": "categorical", "choices": [32, 64, 128]}
}}
"""

import copy

from utils.errors import ConfigError, section_of

NUMERIC = ("log_uniform", "uniform", "int")


def check(config: dict) -> dict[str, dict]:
    """The search space of `config`, checked beyond the schema: every key names a value of a
    section that exists, and every range is one Optuna can draw from."""
    params = config["sweep"]["params"]
    for key, spec in params.items():
        where = f"config key 'sweep.params.{key}'"
        section_of(config, key, where)
        kind = spec["type"]
        if kind == "categorical":
            extra = [name for name in ("low", "high", "step", "log") if name in spec]
            if "choices" not in spec or extra:
                raise ConfigError(f"{where}: categorical takes only 'choices', a list of values")
            continue
        if "choices" in spec or "low" not in spec or "high" not in spec:
            raise ConfigError(f"{where}: {kind} needs 'low' and 'high' (and no 'choices')")
        low, high = spec["low"], spec["high"]
        if not low < high:
            raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            raise ConfigError(f"{where}: int needs whole numbers for low and high")
        if (kind == "log_uniform" or spec.get("log")) and low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
        if kind == "log_uniform" and ("step" in spec or "log" in spec):
            raise ConfigError(f"{where}: log_uniform takes no 'step' or 'log'; use uniform with a step instead")
        if kind != "int" and "log" in spec:
            raise ConfigError(f"{where}: 'log' is for int; use log_uniform for floats")
        if kind == "int" and not float(spec.get("step", 1)).is_integer():
            raise ConfigError(f"{where}: int needs a whole number for step, got {spec['step']}")
        if kind == "int" and spec.get("log") and spec.get("step", 1) != 1:
            raise ConfigError(f"{where}: int with log: true takes no step")
    return params


def suggest(trial, params: dict[str, dict]) -> dict:
    """One value per key, drawn by the Optuna `trial`."""
    values = {}
    for key, spec in params.items():
        kind = spec["type"]
        if kind == "categorical":
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif kind == "int":
            step = int(spec.get("step", 1))
            values[key] = trial.suggest_int(
                key, int(spec["low"]), int(spec["high"]), step=step, log=spec.get("log", False)
            )
        else:
            values[key] = trial.suggest_float(
                key, spec["low"], spec["high"], step=spec.get("step"), log=kind == "log_uniform"
            )
    return values


def refusal(params: dict[str, dict], values: dict) -> str | None:
    """Why `values` (a trial's, read from a study's storage) are not a point of the search space
    `params`: a key it does not declare, or a value outside its range or choices. None if they are."""
    for key, value in values.items():
        spec = params.get(key)
        if spec is None:
            return f"{key!r} is not a key of sweep.params"
        if spec["type"] == "categorical":
            inside = any(value == choice and type(value) is type(choice) for choice in spec["choices"])
        else:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            inside = number and spec["low"] <= value <= spec["high"] and (spec["type"] != "int" or value == int(value))
        if not inside:
            return f"{key}={value!r} is outside what sweep.params allows"
    return None


def apply(config: dict, values: dict) -> dict:
    """A copy of `config` with `values` (dotted key -> value) set, and without its sweep section."""
    config = copy.deepcopy(dict(config))  # a plain dict: a trial's config is resolved afresh
    config.pop("sweep", None)
    for key, value in values.items():
        section = section_of(config, key, f"config key 'sweep.params.{key}'")
        section[key.rpartition(".")[2]] = value
    return config
