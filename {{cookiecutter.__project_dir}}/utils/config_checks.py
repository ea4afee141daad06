"""Config files and the rules every value must follow, checked before anything is built: JSON or
YAML read strictly, `--set` overrides, config.schema.json (which editors read too) and the
signatures of what the config names. Each mistake is one line naming the config key.

Standard library, jsonschema and (for YAML) ruamel.yaml only: `python parse_config.py FILE`
checks a file without torch.
"""

import functools
import inspect
import json
import math
import re
from pathlib import Path

import jsonschema

from utils.errors import PROJECT_DIR, ConfigError, did_you_mean, first_line, section_of

SCHEMA_FILE = PROJECT_DIR / "config.schema.json"
BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
# Arguments that the code passes itself; the config must not set them.
SUPPLIED_BY_CODE = {"optimizer": {"params"}, "lr_scheduler": {"optimizer"}}
# Far deeper than any config, far shallower than the stack that copying or saving a config takes.
MAX_DEPTH = 32
ADDRESS = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")  # scheme://...


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
    try:
        config = _parse_yaml(text, path) if path.suffix.lower() in (".yaml", ".yml") else _parse_json(text, path)
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except ValueError as exc:  # Python's limit of 4300 digits for an integer; a date like 2026-13-01
        raise ConfigError(f"{path}: cannot read a value: {first_line(exc).partition(';')[0]}") from None
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
    return config  # (its values are checked as JSON's types by check_values, as every config's are)


def set_by_path(config: dict, assignment: str) -> None:
    """Apply one `--set a.b.c=value` (value read as JSON, else kept as a string) to `config`."""
    dotted, sep, raw = assignment.partition("=")
    if not sep or not dotted:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set trainer.epochs=5")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = raw
    section = section_of(config, dotted, f"--set {assignment!r}")
    section[dotted.rpartition(".")[2]] = value  # a new key is checked with the rest: schema, or signature


def check_is_mapping(config) -> None:
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys (a JSON object), got {type(config).__name__}")


def check_schema(config) -> None:
    """Raise `ConfigError` for the key that breaks a rule of config.schema.json, if any; then fill
    in the defaults the schema gives for the keys left out."""
    check_is_mapping(config)
    check_values(config)
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


def check_values(node, where: str = "", depth: int = 0) -> None:
    """Refuse what JSON Schema lets through, whichever source gave it (file, --lr, --set, a sweep):
    values of other types than JSON's (YAML's dates, sets, keys that are not text: a checkpoint
    holds the config and loads with weights_only=True), NaN and infinity (Python's json reads NaN
    and Infinity, YAML .nan and .inf), integers beyond 64 bits, and nesting deep enough to overflow
    the stack of whatever copies or saves the config."""
    if not (node is None or isinstance(node, (str, int, float, list, dict))):  # (bool is an int)
        raise ConfigError(f"config key '{where}' holds a {type(node).__name__}; use text, a number or a list")
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"config key '{where}': got {node}, expected a finite number")
    if isinstance(node, int) and not -(2**63) <= node < 2**63:
        raise ConfigError(f"config key '{where}': got a {len(str(abs(node)))}-digit integer, expected one of 64 bits")
    bad = next((key for key in node if not isinstance(key, str)), None) if isinstance(node, dict) else None
    if bad is not None:
        raise ConfigError(f"a config key must be text, got {bad!r}{f' in {where!r}' if where else ''}")
    for key, value in node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ():
        if depth == MAX_DEPTH:
            raise ConfigError(f"config key '{where}': nested more than {MAX_DEPTH} levels deep; flatten it")
        check_values(value, f"{where}.{key}".lstrip(".") if isinstance(node, dict) else f"{where}[{key}]", depth + 1)


def is_remote(text: str) -> bool:
    """Whether `text` names a place on another machine: scheme://host (file:///path and
    sqlite:///path are local files), or a network share (\\\\host\\share, //host/share), which
    Windows would connect to with the user's credentials."""
    if text.startswith(("\\\\", "//")):
        return True
    if not ADDRESS.match(text):
        return False
    scheme, _, rest = text.partition("://")
    return scheme.lower() not in ("file", "sqlite") or not rest.startswith("/")


def no_addresses(node, where: str = "", depth: int = 0) -> None:
    """Refuse a network address (http://host, postgresql://...) anywhere in a config that came
    inside a checkpoint: its author would choose where this run's metrics and files are sent."""
    if isinstance(node, str) and is_remote(node):
        raise ConfigError(
            f"config key '{where}': the checkpoint's config names the address {node!r}, and a checkpoint never "
            "chooses where data is sent or read from; pass your own config with -c, or add --trust-checkpoint "
            "if you trust whoever made the file"
        )
    if depth == MAX_DEPTH:  # (check_values refuses deeper nesting)
        return
    for key, value in node.items() if isinstance(node, dict) else ():
        no_addresses(value, f"{where}.{key}".lstrip("."), depth + 1)
    for i, value in enumerate(node) if isinstance(node, list) else ():
        no_addresses(value, f"{where}[{i}]", depth + 1)


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


def check_arguments(where: str, target, args: dict, args_at: str = "", supplied: tuple = ()) -> None:
    """Bind `args` to the signature of `target`, so that typos fail before anything is built.
    Errors name config key `args_at` (default: `where`.args), then the argument. `supplied`: the
    first parameters, which the code passes (SUPPLIED_BY_CODE's for the config's sections)."""
    args_at = args_at or f"{where}.args"
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # some builtins have no signature to compare with
        return
    supplied = set(supplied) or SUPPLIED_BY_CODE.get(where, set())
    named = [n for n, p in signature.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = [n for n in named if n not in supplied]
    title = getattr(target, "__name__", target)
    for name in args:
        if name in supplied:
            raise ConfigError(f"config key '{args_at}.{name}' is set by the code; remove it from the config")
    try:
        signature.bind_partial(*([None] * len(supplied)), **args)
    except TypeError as exc:
        name = next((n for n in args if n not in named), None)
        if name is None:
            raise ConfigError(f"config key '{args_at}': {title}: {first_line(exc)}") from None
        raise ConfigError(
            f"config key '{args_at}.{name}': {title} has no argument {name!r}{did_you_mean(name, accepted)}; "
            f"it accepts: {', '.join(accepted) or 'no arguments'}"
        ) from None
    empty = inspect.Parameter.empty
    missing = [n for n in accepted if signature.parameters[n].default is empty and n not in args]
    if missing:
        raise ConfigError(f"config key '{args_at}.{missing[0]}' is missing; {title} requires it")


# ---- metrics: the protocol of an epoch-level metric is utils/metrics.py's ----------------------

PROTOCOL = ("update", "compute", "reset", "state_dict", "load_state_dict")
PROTOCOL_TEXT = "update(output, target), compute(), reset(), state_dict() and load_state_dict(state)"


def is_batch_mean(target) -> bool:
    """Whether `target` is a function of (output, target, ...): a batch-mean metric."""
    try:
        return not inspect.isclass(target) and {"output", "target"} <= set(inspect.signature(target).parameters)
    except (TypeError, ValueError):
        return False


def is_epoch_metric(metric) -> bool:
    """Whether `metric` is an object, not a batch-mean function."""
    plain = (inspect.isfunction, inspect.isbuiltin, inspect.ismethod)
    return not (any(test(metric) for test in plain) or isinstance(metric, functools.partial))


def metric_name(metric) -> str:
    """The key a metric is logged under: its function's or its class's name."""
    return type(metric).__name__ if is_epoch_metric(metric) else metric.__name__


def check_metrics(metrics: list, entries: list) -> None:
    """One line naming the config entry of a metric object that misses part of the protocol, or
    of a second metric logged under the same name."""
    names: dict[str, int] = {}
    for i, (metric, entry) in enumerate(zip(metrics, entries, strict=True)):
        name = metric_name(metric)
        missing = [method for method in PROTOCOL if not callable(getattr(metric, method, None))]
        if is_epoch_metric(metric) and missing:
            made = f"{entry if isinstance(entry, str) else entry.get('type')} made a {name}, which"
            raise ConfigError(
                f"config key 'metrics[{i}]': {made} has no {', '.join(f'{m}()' for m in missing)}; "
                f"an epoch-level metric needs {PROTOCOL_TEXT} (README: Epoch-level metrics)"
            )
        if name in names:
            raise ConfigError(
                f"config key 'metrics[{i}]': logged as {name!r}, like metrics[{names[name]}]; name each metric once"
            )
        names[name] = i
