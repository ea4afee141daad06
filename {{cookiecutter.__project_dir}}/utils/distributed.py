"""Multi-process training under torchrun: joining the process group and combining results.

Single-process runs never call into torch.distributed; every function here is then a cheap no-op.
"""

import os

import torch
import torch.distributed as dist


def setup(device_name: str) -> torch.device | None:
    """Join the process group when started by torchrun; return this process's device, else None.

    Each process drives the GPU of its LOCAL_RANK (NCCL); without CUDA, processes share the CPU
    (gloo). The same command works across machines with torchrun's --nnodes/--rdzv-endpoint.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return device


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Only the main process writes logs, TensorBoard files and checkpoints."""
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all processes, in place; returns it."""
    if not dist.is_initialized():
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":  # NCCL reduces CUDA tensors only
        tensor.copy_(all_reduce_sum(tensor.cuda()))
    else:
        dist.all_reduce(tensor)
    return tensor


def any_process(flag: bool, device: torch.device) -> bool:
    """True on every process when `flag` is true on at least one (so all stop at the same step)."""
    if not dist.is_initialized():
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
