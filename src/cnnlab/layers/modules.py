"""The few torch modules the layer types need beyond torch.nn's own."""

import torch
from torch import nn


class AvgPoolSame(nn.Module):
    """Average pooling over real pixels only, for TensorFlow SAME padding that is uneven."""

    def __init__(self, kernel, stride, pads, in_hw):
        super().__init__()
        self.pad = nn.ZeroPad2d(pads)
        self.pool = nn.AvgPool2d(kernel, stride)
        ones = torch.ones(1, 1, *in_hw)
        self.register_buffer("scale", 1.0 / self.pool(self.pad(ones)), persistent=False)

    def forward(self, x):
        return self.pool(self.pad(x)) * self.scale


class ScaledLinear(nn.Linear):
    """A linear layer whose output is multiplied by a constant: airbench's 1/9 on the logits, which tempers the
    early, overconfident outputs. A subclass, so that its weights keep a plain Linear's names in checkpoints."""

    def __init__(self, in_features: int, out_features: int, bias: bool, scale: float):
        super().__init__(in_features, out_features, bias=bias)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


class Residual(nn.Module):
    """activation(body(x) + shortcut(x)): a ResNet block written as a layer list."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, activation: nn.Module):
        super().__init__()
        self.body, self.shortcut, self.activation = body, shortcut, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))
