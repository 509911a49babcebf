"""DO: dropout on its own."""

from cnnlab.checks.fields import Field, percent
from cnnlab.layers.spec import LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer

    return Layer(nn.Dropout(spec["drop_out"] / 100), shape)


register(LayerType("DO", "dropout on its own", {"drop_out": Field(percent, help="dropout in percent")}, build))
