"""Which parameters train, and with which optimizer settings: config keys `arch.freeze` and
`optimizer.param_groups`, both globs over the model's parameter names (`model.named_parameters()`:
`fc.weight`, `layer4.1.conv2.weight`; `*` matches dots too, so `layer*` is every residual stage).

    optimizer = config.init_obj("optimizer", optimizer_groups(model, config, config.targets["optimizer"]))

`arch.freeze: ["conv1.*", "bn1.*", "layer*"]` sets requires_grad False on what its globs match and
leaves it out of the optimizer. Each entry of `optimizer.param_groups`, `{"params": GLOB, "name":
NAME, ...optimizer arguments}`, groups the trainable parameters its glob matches (a parameter that
several globs match goes to the first) with those arguments on top of `optimizer.args`. The
parameters no glob matches form the default group with `optimizer.args` alone: group 0, whose
learning rate is logged as `lr`; each configured group's is logged as `lr/NAME` (its `name`, else
its glob's letters, digits and `_.-`: `fc` for `fc.*`).

The optimizer gets (name, parameter) pairs, so its state_dict lists each group's parameter names,
and a checkpoint resumes only into the same groups (utils/checkpoint.py checks them).
"""

import fnmatch
import re

from utils.config_checks import check_arguments
from utils.errors import ConfigError, did_you_mean

NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_.-]")  # what trackers refuse in a metric name (MLflow)
OWN_KEYS = ("params", "name")  # the keys of a param_groups entry that are not optimizer arguments


def optimizer_groups(model, config: dict, optimizer_class) -> list[dict]:
    """Freeze the parameters of `arch.freeze`; return the rest as the parameter groups of
    `optimizer.param_groups` (checked against `optimizer_class`), the default group first."""
    named = list(model.named_parameters())
    for i, pattern in enumerate(config["arch"].get("freeze", [])):
        for _, param in _matching(named, pattern, f"arch.freeze[{i}]", named):
            param.requires_grad_(False)
    left = [(name, param) for name, param in named if param.requires_grad]
    if not left:
        raise ConfigError(
            "config key 'arch.freeze' freezes every parameter of the model; leave some to train"
            if config["arch"].get("freeze")
            else f"config key 'arch': {config['arch']['type']} has no parameter to train"
        )
    section = config["optimizer"]
    entries = section.get("param_groups", [])
    groups = []
    for i, (entry, name) in enumerate(zip(entries, group_names(entries), strict=True)):
        where = f"optimizer.param_groups[{i}]"
        settings = {key: value for key, value in entry.items() if key not in OWN_KEYS}
        check_arguments("optimizer", optimizer_class, {**section.get("args", {}), **settings}, args_at=where)
        taken = _matching(left, entry["params"], f"{where}.params", named)
        groups.append({"params": taken, "name": name, **settings})
        grouped = {key for key, _ in taken}
        left = [pair for pair in left if pair[0] not in grouped]
    return ([{"params": left}] if left else []) + groups


def group_names(entries: list[dict]) -> list[str]:
    """The names under which the groups of `optimizer.param_groups` are logged (`lr/NAME`)."""
    names = []
    for i, entry in enumerate(entries):
        name = entry.get("name") or NOT_IN_A_NAME.sub("", entry["params"]).strip("._-")
        if not name or name in names:
            why = f"is also group {names.index(name)}'s name" if name else "cannot name the group"
            raise ConfigError(
                f"config key 'optimizer.param_groups[{i}]': {name or entry['params']!r} {why}; "
                'give the group a "name" (letters, digits, _ . -)'
            )
        names.append(name)
    return names


def _matching(pairs: list, pattern: str, where: str, named: list) -> list:
    """The (name, parameter) pairs of `pairs` whose name `pattern` matches; none is a one-line
    error that shows what the model's parameters are called (`named`: all of them)."""
    found = [(name, param) for name, param in pairs if fnmatch.fnmatchcase(name, pattern)]
    if found:
        return found
    if any(fnmatch.fnmatchcase(name, pattern) for name, _ in named):  # (in a param_groups entry only)
        raise ConfigError(
            f"config key '{where}': {pattern!r} matches only parameters that arch.freeze freezes or an earlier "
            "group holds; remove the entry, or change its glob"
        )
    modules = list(dict.fromkeys(f"{name.split('.')[0]}.*" for name, _ in named))
    raise ConfigError(
        f"config key '{where}': {pattern!r} matches no parameter of the model{did_you_mean(pattern, modules)}; "
        f"its parameters are {', '.join(modules[:8])}{', ...' if len(modules) > 8 else ''} "
        f"(e.g. {named[0][0]})"
    )


def learning_rates(optimizer) -> dict[str, float]:
    """What the trainer logs: `lr`, group 0's learning rate, and `lr/NAME` for each named group."""
    groups = optimizer.param_groups
    return {"lr": groups[0]["lr"], **{f"lr/{g['name']}": g["lr"] for g in groups if "name" in g and "lr" in g}}


def changed_settings(target, key: str, saved: dict, section: dict):
    """For resuming: (config key, argument, value, the optimizer groups it applies to) for each
    argument of config section `key` that differs from `saved`, the checkpoint's: a changed
    `args` entry goes to every group that does not set it itself, a changed group entry to that
    group (a scheduler has no groups: the caller sets its attribute)."""
    entries, before = section.get("param_groups", []), saved.get("param_groups", [])
    own = dict(zip(group_names(entries), entries, strict=True))
    groups = getattr(target, "param_groups", [])
    for name, value in section.get("args", {}).items():
        if saved.get("args", {}).get(name) != value:
            applies = [group for group in groups if name in group and name not in own.get(group.get("name"), {})]
            yield f"{key}.args.{name}", name, value, applies
    for i, (group_name, entry) in enumerate(own.items()):
        for name, value in entry.items():
            if name not in OWN_KEYS and (before[i] if i < len(before) else {}).get(name) != value:
                applies = [group for group in groups if group.get("name") == group_name]
                yield f"{key}.param_groups[{i}].{name}", name, value, applies
