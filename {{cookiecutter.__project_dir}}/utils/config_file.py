"""Reading a config file: JSON or YAML, told apart by the extension.

Both give the same dict. Syntax errors name the line and column, a key given twice is refused
(both parsers would silently keep the last), and the editor-only `$schema` key is dropped.
"""

import json
import re
from pathlib import Path

from utils.errors import ConfigError, first_line


def load_config(path: str | Path) -> dict:
    """Read a JSON or YAML config (by extension); errors name the line and column, duplicate keys
    are refused, and the editor-only `$schema` key is dropped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass an existing file with -c")
    try:
        # utf-8-sig: Windows editors may start the file with a byte-order mark
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    config = _parse_yaml(text, path) if path.suffix.lower() in (".yaml", ".yml") else _parse_json(text, path)
    if isinstance(config, dict):
        config.pop("$schema", None)
    return config


def _parse_json(text: str, path: Path):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        for k in keys:
            if keys.count(k) > 1:
                raise ConfigError(f"{path}: key {k!r} appears twice in the same object; keep one")
        return dict(pairs)

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


def _parse_yaml(text: str, path: Path):
    try:
        import yaml  # only YAML configs need PyYAML
    except ImportError:
        raise ConfigError(f"{path}: reading YAML needs PyYAML; pip install pyyaml") from None

    class StrictLoader(yaml.SafeLoader):
        """YAML's safe loader (plain data only), refusing a key given twice instead of keeping the
        last, and reading 3e-4 as a number (plain YAML 1.1 wants 3.0e-4)."""

    def no_duplicates(loader, node):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden
                continue
            line, scalar = key_node.start_mark.line + 1, isinstance(key_node, yaml.ScalarNode)
            key = loader.construct_object(key_node) if scalar else None
            if not isinstance(key, str):
                shown = repr(key) if scalar else f"a {key_node.id}"
                raise ConfigError(f"{path}:{line}: a config key must be text, got {shown}")
            if key in seen:
                raise ConfigError(f"{path}:{line}: key {key!r} appears twice in the same mapping; keep one")
            seen.add(key)
        return loader.construct_mapping(node)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", EXPONENT_FLOAT, list("-+0123456789."))
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: plain data, no Python objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {first_line(exc)}") from None
