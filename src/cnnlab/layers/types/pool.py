"""P: max or average pooling, then dropout. SAME padding as TensorFlow pads it: max pooling with -inf, average
pooling over the real pixels only."""

from cnnlab.checks.fields import Field, choice, optional, pair
from cnnlab.layers.spec import DROP_OUT, PADDING, LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer, sequence, tail, window
    from cnnlab.layers.modules import AvgPoolSame

    stride = spec["stride"] or spec["kernel_size"]
    c, (oh, ow), (top, bottom, left, right) = window(spec, shape, ctx, stride)
    kernel = spec["kernel_size"]
    if max(top, bottom) > kernel[0] // 2 or max(left, right) > kernel[1] // 2:
        raise ctx.fail(spec, f"padding {spec['padding']!r} is more than half the kernel {kernel[0]}x{kernel[1]}; "
                             "use padding: same or a smaller padding")
    even = top == bottom and left == right
    modules: list[nn.Module] = []
    if spec["pool"] == "max":
        if not even:
            modules.append(nn.ConstantPad2d((left, right, top, bottom), float("-inf")))
        modules.append(nn.MaxPool2d(kernel, stride, (top, left) if even else 0))
    elif even:
        modules.append(nn.AvgPool2d(kernel, stride, (top, left), count_include_pad=False))
    else:
        modules.append(AvgPoolSame(kernel, stride, (left, right, top, bottom), shape[1:]))
    tail(spec, modules, c, flat=False)
    return Layer(sequence(modules), (c, oh, ow))


register(LayerType(
    "P", "pooling → dropout",
    {
        "pool": Field(choice("max", "avg"), "max", "max or avg pooling"),
        "kernel_size": Field(pair, help="window height and width"),
        "stride": Field(optional(pair), None, "stride (default: the kernel size)"),
        "padding": PADDING,
        "drop_out": DROP_OUT,
    },
    build,
))
