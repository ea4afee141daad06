"""Where this process runs: its device, and under torchrun its place in the process group.

Single-process runs never call into torch.distributed; the helpers below are then cheap no-ops.
"""

import gc
import os

import torch
import torch.distributed as dist

from utils.errors import ConfigError


def setup(device_name: str) -> torch.device:
    """This process's device. Under torchrun, also join the process group: each process drives
    the GPU of its LOCAL_RANK (NCCL), or all share the CPU (gloo) without CUDA or with `cpu`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return single_device(device_name)
    if device_name not in ("auto", "cuda", "cpu"):
        raise ConfigError(f"--device {device_name!r}: under torchrun use auto, cuda or cpu (one GPU per process)")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device 'cuda': CUDA is not available on this machine; use --device cpu")
    use_cuda = torch.cuda.is_available() and device_name != "cpu"
    device = torch.device("cpu")
    if use_cuda:
        local_rank = int(os.environ["LOCAL_RANK"])
        # checked by every process (not only those without a GPU), so that the main one says it
        if int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1)) > torch.cuda.device_count():
            raise ConfigError(
                f"torchrun started more processes per node than the {torch.cuda.device_count()} GPU(s) here; "
                "lower --nproc_per_node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return device


def single_device(name: str) -> torch.device:
    """`auto` picks CUDA when available; `cpu`, `cuda`, `cuda:N` and `mps` are taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.isdigit():  # pytorch-template's `-d 0` named GPUs by index
        raise ConfigError(f"--device {name!r}: name a GPU as cuda:{name}; for several GPUs use torchrun")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name!r}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name!r}: MPS is not available on this machine; use --device cpu")
    return device


def _active() -> bool:
    return dist.is_available() and dist.is_initialized()


def cleanup() -> None:
    """Leave the process group; objects holding its pending work (DDP) must be freed first."""
    if _active():
        gc.collect()
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    if _active():
        return dist.get_rank()
    # Before the group is joined, torchrun's RANK tells which process this is (alone, it is 0).
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def is_main() -> bool:
    """Only the main process writes logs, TensorBoard files and checkpoints, and prints errors."""
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes, in place; returns it."""
    return _all_reduce(tensor, "SUM")


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise maximum of `tensor` over all processes, in place; returns it."""
    return _all_reduce(tensor, "MAX")


def _all_reduce(tensor: torch.Tensor, op: str) -> torch.Tensor:
    if not _active():
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":  # NCCL reduces CUDA tensors only
        tensor.copy_(_all_reduce(tensor.cuda(), op))
    else:
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op))
    return tensor


def all_gather(value) -> list:
    """`value` (tensors, numbers, lists, dicts) of every process, in rank order."""
    if not _active():
        return [value]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process the main process's buffers (BatchNorm's running statistics, say)."""
    if world_size() > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()
