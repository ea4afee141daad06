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
        elif isinstance(value, torch.Tensor):
            self._sums[key] = value.detach().float() * n  # a new tensor, safe to update in place from now on
        else:
            self._sums[key] = total + value * n
        self._counts[key] += n

    def state_dict(self) -> dict:
        """Sums and counts so far (tensors and ints), to be saved in a mid-epoch checkpoint."""
        return {"sums": {k: torch.as_tensor(v).cpu() for k, v in self._sums.items()}, "counts": dict(self._counts)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self._sums = {k: v.to(device) for k, v in state["sums"].items()}
        self._counts = dict(state["counts"])

    def result(self) -> dict[str, float]:
        """The sample-weighted mean of every key that received at least one update."""
        sums = [self._sums[key] for key in self._keys]
        device = next((s.device for s in sums if isinstance(s, torch.Tensor)), "cpu")
        values = [torch.as_tensor(s, dtype=torch.float64, device=device) for s in sums]
        counts = torch.tensor([float(self._counts[key]) for key in self._keys], dtype=torch.float64)
        totals = distributed.all_reduce_sum(torch.cat([torch.stack(values), counts.to(device)])).tolist()
        n = len(self._keys)
        return {key: totals[i] / totals[n + i] for i, key in enumerate(self._keys) if totals[n + i] > 0}
