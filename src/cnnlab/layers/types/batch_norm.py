"""BN: batch norm on its own (2-D on images, 1-D after flattening)."""

from cnnlab.checks.fields import Field, boolean, fraction
from cnnlab.layers.spec import LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer

    norm_class = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    norm = norm_class(shape[0], momentum=spec["momentum"])
    norm.weight.requires_grad_(spec["scale"])
    return Layer(norm, shape)


register(LayerType("BN", "batch norm on its own (2-D on images, 1-D after flattening)", {
    "scale": Field(boolean, True, "learn a per-channel scale (false: fixed at 1, only the shift is learnt)"),
    "momentum": Field(fraction, 0.1, "weight of each new batch in the running statistics (PyTorch's)"),
}, build))
