"""A dry run of one batch through the real objects, before the run writes any file.

The config checks cannot see what fails only when the objects meet the data: model arguments that
do not fit the batches, a loss that does not fit the model's output, a metric that cannot read it,
an optimizer that needs a closure, a scheduler argument that divides by zero. Here each becomes a
one-line error naming the config key (exit 2), not a traceback minutes into the run, after the
run folder exists. An error raised in the project's own code is a bug and keeps its traceback.

Nothing is changed: the step is taken without `optimizer.step()`, then gradients, buffers and the
random state are put back; the optimizer and the scheduler are tried on a throw-away parameter.
"""

import contextlib
import functools
import inspect
import random
import traceback
import warnings

import numpy as np
import torch

from utils.batches import as_step_result, to_device
from utils.config_checks import is_epoch_metric
from utils.errors import ConfigError, UserError, first_line, is_user_bug
from utils.metrics import EpochMetrics


def check(trainer) -> None:
    """Raise a `ConfigError` naming the config key when one training step cannot run. Under
    torchrun each process tries its own share of the data, then all agree: if one failed, all stop."""
    model, trainer.model = trainer.model, trainer.raw_model  # without DDP, one failure cannot hang the others
    try:
        with _random_state_kept(trainer.device):
            batch = _first_batch(trainer)
            _one_step(trainer, batch)
        _optimizer_and_scheduler(trainer)
    except UserError as exc:
        trainer.guard.fail(exc)  # alone: raised at once
    finally:
        trainer.model = model
    trainer.guard.agree()


def _first_batch(trainer):
    try:
        return next(iter(trainer.data_loader))
    except StopIteration:
        raise ConfigError("config key 'data_loader': the training data yields no batch") from None
    except Exception as exc:
        _raise_if_bug(exc)
        raise ConfigError(f"config key 'data_loader': reading the first batch failed: {first_line(exc)}") from None


def _one_step(trainer, batch) -> None:
    """Forward, loss, metrics and backward on `batch`, as a training step does them, then undone."""
    model, config = trainer.raw_model, trainer.config
    buffers = [buffer.clone() for buffer in model.buffers()]  # BatchNorm statistics, say
    trainer.model.train()
    try:
        with trainer.autocast():
            result = as_step_result(trainer.training_step(to_device(batch, trainer.device)))
        if "output" in result and "target" in result:
            for metric, name in zip(trainer.metric_ftns, config.get("metrics", []), strict=False):
                try:
                    _try_metric(metric, result["output"].detach(), result["target"], trainer.guard.distributed)
                except Exception as exc:
                    _raise_if_bug(exc)
                    name = name if isinstance(name, str) else name.get("type")
                    raise ConfigError(f"config key 'metrics' ({name}): {first_line(exc)}") from None
        result["loss"].backward()
    except Exception as exc:  # (a ConfigError raised above goes on as it is: _raise_if_bug re-raises it)
        _raise_if_bug(exc)
        raise ConfigError(_step_message(exc, trainer)) from None
    finally:
        trainer.optimizer.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, saved in zip(model.buffers(), buffers, strict=True):
                buffer.copy_(saved)


def _try_metric(metric, output: torch.Tensor, target: torch.Tensor, distributed: bool) -> None:
    """Call a batch-mean metric; give a copy of an epoch-level one the batch, then compute it
    (alone only: a torchmetrics Metric would wait for the other processes)."""
    if not is_epoch_metric(metric):
        metric(output, target)
        return
    epoch_metrics = EpochMetrics([metric])
    epoch_metrics.update(output, target)
    if not distributed:
        epoch_metrics.result()


def _step_message(exc: Exception, trainer) -> str:
    """Name the config key whose object raised `exc`: the model's forward, or the loss."""
    codes = {frame.f_code for frame, _ in traceback.walk_tb(exc.__traceback__)}
    config, reason = trainer.config, first_line(exc)
    if _code(type(trainer.raw_model).forward) in codes:
        return (
            f"config key 'arch' ({config['arch']['type']}): one training batch through the model failed: "
            f"{reason}; check that arch.args fit the data"
        )
    if _code(trainer.criterion) in codes:
        takes_classes = "num_classes" in inspect.signature(type(trainer.raw_model)).parameters
        classes = " (arch.args.num_classes?)" if takes_classes else ""
        return (
            f"config key 'loss' ({config['loss']}): the loss of one training batch failed: {reason}; "
            f"check that it fits the model's output and the targets{classes}"
        )
    return f"config keys 'arch' and 'loss': one training step on the first batch failed: {reason}"


def _code(fn):
    """The code object that runs when `fn` is called (a function, a partial, or a module)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, torch.nn.Module):
        fn = type(fn).forward
    return getattr(fn, "__code__", None)


def _optimizer_and_scheduler(trainer) -> None:
    """Step a copy of the optimizer, and of the scheduler once per epoch, on a single parameter
    per parameter group (each with the group's arguments)."""
    config = trainer.config
    groups = [
        {**{k: v for k, v in group.items() if k not in ("params", "param_names")}, "params": [_stand_in()]}
        for group in trainer.optimizer.param_groups
    ]
    try:  # the same class and arguments as the real one; a class that takes others is not tried
        optimizer = type(trainer.optimizer)(groups, **config["optimizer"].get("args", {}))
    except Exception:
        return
    try:
        optimizer.step()
    except Exception as exc:
        raise ConfigError(
            f"config key 'optimizer' ({config['optimizer']['type']}): optimizer.step() failed: {first_line(exc)}"
        ) from None
    if trainer.lr_scheduler is None:
        return
    plateau = isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    try:
        scheduler = type(trainer.lr_scheduler)(optimizer, **config["lr_scheduler"].get("args", {}))
    except Exception:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(min(trainer.epochs, 1000)):  # the trainer steps it after every epoch
                scheduler.step(0.0) if plateau else scheduler.step()
    except Exception as exc:
        raise ConfigError(
            f"config key 'lr_scheduler' ({config['lr_scheduler']['type']}): stepping it once per epoch "
            f"({trainer.epochs} times) failed: {first_line(exc)}"
        ) from None


def _stand_in() -> torch.nn.Parameter:
    param = torch.nn.Parameter(torch.zeros(1))
    param.grad = torch.ones(1)
    return param


def _raise_if_bug(exc: Exception) -> None:
    """Re-raise `exc` with its traceback when it was raised in the project's own code."""
    if is_user_bug(exc, raised_there=True):
        raise exc


def check_num_classes(data_loader, model) -> None:
    """When the data names its classes, a model with a `num_classes` attribute must match it."""
    classes, outputs = getattr(data_loader, "classes", None), getattr(model, "num_classes", None)
    if classes is not None and isinstance(outputs, int) and outputs != len(classes):
        shown = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
        raise ConfigError(
            f"config key 'arch.args.num_classes' is {outputs} but the data has {len(classes)} classes "
            f"({shown}); set it to {len(classes)} if those are all your classes, else check the data "
            "(config key 'data_loader')"
        )


@contextlib.contextmanager
def _random_state_kept(device: torch.device):
    """Leave every random state as it was: the dry run must not shift the run's random draws."""
    python, numpy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield
    random.setstate(python)
    np.random.set_state(numpy)
