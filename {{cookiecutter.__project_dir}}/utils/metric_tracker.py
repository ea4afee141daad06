"""Running averages of losses and metrics, weighted by sample count."""

import torch

from utils import distributed


class MetricTracker:
    """Accumulates sums on the metrics' own device and reads them back once, in `result()`.

    Calling `.item()` on every batch would stall a GPU at each step; here the only host-device
    synchronisation happens when the averages are requested. Under torchrun, sums and counts are
    added up over all processes first, so every process reports the same global averages.
    """

    def __init__(self, *keys: str) -> None:
        self._keys = keys
        self.reset()

    def reset(self) -> None:
        self._sums: dict[str, torch.Tensor | float] = dict.fromkeys(self._keys, 0.0)
        self._counts: dict[str, int] = dict.fromkeys(self._keys, 0)

    def update(self, key: str, value: torch.Tensor | float, n: int = 1) -> None:
        """Add a batch mean `value` that was computed over `n` samples."""
        total = self._sums[key]
        if isinstance(total, torch.Tensor):
            total.add_(value.detach() if isinstance(value, torch.Tensor) else value, alpha=n)
        elif isinstance(value, torch.Tensor):  # a new tensor, safe to update in place from now on
            self._sums[key] = value.detach().float() * n + total
        else:
            self._sums[key] = total + value * n
        self._counts[key] += n

    def _totals(self) -> list[float]:
        """Sums then counts of every key, added up over all processes (a collective under torchrun)."""
        sums = [self._sums[key] for key in self._keys]
        device = next((s.device for s in sums if isinstance(s, torch.Tensor)), torch.device("cpu"))
        dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        values = [torch.as_tensor(s, dtype=dtype, device=device) for s in sums]
        counts = torch.tensor([float(self._counts[key]) for key in self._keys], dtype=dtype, device=device)
        return distributed.all_reduce_sum(torch.cat([torch.stack(values), counts])).tolist()

    def state_dict(self) -> dict:
        """Global sums and counts so far, for a mid-epoch checkpoint (call on every process)."""
        totals, n = self._totals(), len(self._keys)
        return {
            "sums": dict(zip(self._keys, totals[:n], strict=True)),
            "counts": dict(zip(self._keys, totals[n:], strict=True)),
        }

    def load_state_dict(self, state: dict) -> None:
        self._sums = {key: float(state["sums"][key]) for key in self._keys}
        self._counts = {key: int(state["counts"][key]) for key in self._keys}

    def result(self) -> dict[str, float]:
        """The sample-weighted mean of every key that received at least one update."""
        totals, n = self._totals(), len(self._keys)
        return {key: totals[i] / totals[n + i] for i, key in enumerate(self._keys) if totals[n + i] > 0}
