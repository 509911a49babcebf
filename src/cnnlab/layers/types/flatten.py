"""F: flatten."""

from cnnlab.layers.spec import LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    import math

    from torch import nn

    from cnnlab.layers.build import Layer

    return Layer(nn.Flatten(), (math.prod(shape),))


register(LayerType("F", "flatten", {}, build))
