"""Base class for all models."""

from torch import nn


class BaseModel(nn.Module):
    """A `torch.nn.Module` whose printout ends with its number of trainable parameters.

    Optional: any `nn.Module` can be named in the config's `arch.type`.
    """

    def forward(self, *inputs):
        raise NotImplementedError

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __str__(self) -> str:
        return f"{super().__str__()}\nTrainable parameters: {self.num_parameters():,}"
