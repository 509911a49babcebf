"""C: 2-D convolution, then [batch norm], activation and dropout; TensorFlow's SAME padding by default."""

from cnnlab.checks.fields import Field, boolean, choice, pair, positive_int
from cnnlab.layers.spec import ACTIVATION, BATCH_NORM, BIAS, DROP_OUT, PADDING, LayerSpec, LayerType, register


def trains_weights(spec: LayerSpec) -> bool:
    return spec["init"] != "whiten" and not spec["freeze_weights"]


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer, sequence, tail, window
    from cnnlab.layers.init import WhiteningConv2d, dirac_

    c, (oh, ow), (top, bottom, left, right) = window(spec, shape, ctx, spec["stride"])
    modules: list[nn.Module] = []
    if top == bottom and left == right:
        pad = (top, left)
    else:
        modules.append(nn.ZeroPad2d((left, right, top, bottom)))
        pad = (0, 0)
    n, (kh, kw) = spec["num_output"], spec["kernel_size"]
    if spec["init"] == "whiten" and n not in (c * kh * kw, 2 * c * kh * kw):
        raise ctx.fail(spec, f"init: whiten makes one filter per patch dimension (channels x kernel = "
                             f"{c}x{kh}x{kw} = {c * kh * kw}), or twice that with each filter also negated; "
                             f"num_output is {n}: use {c * kh * kw} or {2 * c * kh * kw}")
    conv_class = WhiteningConv2d if spec["init"] == "whiten" else nn.Conv2d
    conv = conv_class(c, n, (kh, kw), spec["stride"], pad, bias=spec["bias"])
    if spec["init"] == "dirac":
        dirac_(conv)
    conv.weight.requires_grad_(not spec["freeze_weights"])
    modules.append(conv)
    tail(spec, modules, n, flat=False)
    return Layer(sequence(modules), (n, oh, ow), 2 * c * kh * kw * n * oh * ow,
                 [conv.weight] if trains_weights(spec) else [])


register(LayerType(
    "C", "2-D convolution → [batch norm] → activation → dropout",
    {
        "num_output": Field(positive_int, help="output channels"),
        "kernel_size": Field(pair, help="kernel height and width"),
        "stride": Field(pair, 1, "stride"),
        "padding": PADDING,
        "activation": ACTIVATION,
        "batch_norm": BATCH_NORM,
        "bias": BIAS,
        "drop_out": DROP_OUT,
        "init": Field(choice("default", "dirac", "whiten"), "default",
                      "'default' (PyTorch's), 'dirac' (identity on the first input channels) or 'whiten' (patch "
                      "whitening from the training images)"),
        "freeze_weights": Field(boolean, False, "keep the initial weights (the bias, if any, still trains)"),
    },
    build, widens=lambda spec: spec["init"] != "whiten", muon=trains_weights,
))
