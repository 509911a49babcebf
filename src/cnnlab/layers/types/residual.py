"""R: a residual block, activation(layers(x) + x); the input goes through a strided 1x1 convolution (with batch
norm if the block has any) when the block changes the shape."""

from cnnlab.checks.fields import Field, choice
from cnnlab.layers.spec import LayerSpec, LayerType, activation, layer_list, register


def describe(spec: LayerSpec) -> str:
    from cnnlab.layers.spec import describe as one

    inner = "; ".join(f"{s.type} {one(s)}".strip() for s in spec["layers"])
    shortcut = " (avgpool shortcut)" if spec["shortcut"] == "avgpool" else ""
    return f"[{inner}] + input{shortcut}" + (f", {spec['activation']}" if spec["activation"] else "")


def _projection(spec: LayerSpec, shape, out, ctx):
    """The shortcut: identity when the shape is kept, else a 1x1 convolution (stride chosen so that SAME gives the
    body's size) with batch norm when the body has it, or a linear map for flat shapes; (module, flops, weights)."""
    import math

    from torch import nn

    from cnnlab.layers.build import sequence

    if out == shape:
        return nn.Identity(), 0, []
    if len(shape) == 1 and len(out) == 1:
        linear = nn.Linear(shape[0], out[0])
        return linear, 2 * shape[0] * out[0], [linear.weight]
    if len(shape) != 3 or len(out) != 3:
        raise ctx.fail(spec, f"its layers turn {'x'.join(map(str, shape))} into {'x'.join(map(str, out))}; a "
                             "residual block must keep its input either spatial or flat, not flatten it")
    strides = [next((st for st in range(1, i + 1) if math.ceil(i / st) == o), None) for i, o in zip(shape[1:], out[1:])]
    if None in strides:
        raise ctx.fail(spec, f"no 1x1 strided projection maps {shape[1]}x{shape[2]} to {out[1]}x{out[2]}; "
                             "use padding: same inside residual blocks")
    modules: list[nn.Module] = []
    if spec["shortcut"] == "avgpool" and strides != [1, 1]:  # ResNet-D: every pixel counts, not one in stride**2
        modules.append(nn.AvgPool2d(strides, strides, ceil_mode=True, count_include_pad=False))
        strides = [1, 1]
    conv = nn.Conv2d(shape[0], out[0], 1, tuple(strides), bias=False)
    modules.append(conv)
    if any(s.args.get("batch_norm") or s.type == "BN" for s in spec["layers"]):
        modules.append(nn.BatchNorm2d(out[0]))
    return sequence(modules), 2 * shape[0] * out[0] * out[1] * out[2], [conv.weight]


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer, activation_module, build_layer
    from cnnlab.layers.modules import Residual

    blocks, flops, inner, matrices = [], 0, shape, []
    for j, layer in enumerate(spec["layers"]):
        built = build_layer(layer, inner, ctx.inside(j, spec))
        blocks.append(built.module)
        inner, flops, matrices = built.shape, flops + built.flops, matrices + built.matrices
    shortcut, extra, weights = _projection(spec, shape, inner, ctx)
    return Layer(Residual(nn.Sequential(*blocks), shortcut, activation_module(spec["activation"])), inner,
                 flops + extra, matrices + weights)


register(LayerType(
    "R", "residual block: its own `layers` (any types but `T`), plus the input, then `activation`; the input goes "
         "through a strided 1×1 convolution (with batch norm if the block has any) when the block changes the shape",
    {
        "layers": Field(layer_list, help="the block's own layer list (no T)"),
        "activation": Field(activation, "relu", "activation after the sum"),
        "shortcut": Field(choice("conv", "avgpool"), "conv", "when the shape changes: a strided 1×1 convolution "
                                                             "(conv), or ResNet-D's average pool then a 1×1 (avgpool)"),
    },
    build, describe, nested=True,
))
