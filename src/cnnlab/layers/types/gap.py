"""GAP: global average pooling, which flattens."""

from cnnlab.layers.spec import LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer

    if len(shape) != 3:
        raise ctx.fail(spec, "needs a spatial input but its input is already flat; put GAP before FC and F")
    return Layer(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],))


register(LayerType("GAP", "global average pooling, flattens", {}, build))
