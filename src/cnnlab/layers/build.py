"""Layer list -> `nn.Module`: one builder per layer type, shapes inferred from the data set's input shape.

Padding 'same' is TensorFlow's: output = ceil(input / stride), the extra pixel after (bottom/right) when
the total is odd, as the seed's TensorFlow network did. Max pooling pads with -inf and average pooling
averages over real pixels only, again as TensorFlow does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import ArchError
from cnnlab.layers.init import WhiteningConv2d, dirac_, whiten_from_data
from cnnlab.layers.scale import resize
from cnnlab.layers.spec import LayerSpec, parse_layers

Shape = tuple[int, ...]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
}


@dataclass(frozen=True)
class Context:
    """What a builder needs besides its spec: where it stands, for errors, and the data set's facts."""

    index: int
    input_shape: Shape
    num_classes: int
    parent: str = ""  # 'layer 3 (R) > ' inside a residual block

    def fail(self, spec: LayerSpec, message: str) -> ArchError:
        shape = "x".join(map(str, self.input_shape))
        return ArchError(f"{self.parent}layer {self.index} ({spec.type}): {message} "
                         f"(the data set's input is {shape}).")


@dataclass
class Built:
    module: nn.Module
    shape: Shape
    flops: int = 0


def _axis(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int, int]:
    """Output size and the padding before and after, along one axis."""
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1, pad, pad


def _window(spec: LayerSpec, shape: Shape, ctx: Context, stride: tuple[int, int]):
    """Checks a conv/pool window against its input; returns (channels, (oh, ow), (top, bottom, left, right))."""
    if len(shape) != 3:
        raise ctx.fail(spec, f"needs a spatial input (channels x height x width) but its input is already flat "
                             f"({shape[0]} features); put convolutions and pools before the first FC, GAP or F")
    c, h, w = shape
    (kh, kw), (sh, sw) = spec["kernel_size"], stride
    oh, top, bottom = _axis(h, kh, sh, spec["padding"])
    ow, left, right = _axis(w, kw, sw, spec["padding"])
    if oh <= 0 or ow <= 0:
        raise ctx.fail(spec, f"the spatial size collapses: input {h}x{w}, kernel {kh}x{kw}, stride {sh}x{sw}, "
                             f"padding {spec['padding']!r} gives {oh}x{ow}; use padding: same, a smaller kernel or "
                             "stride, or fewer pooling layers")
    return c, (oh, ow), (top, bottom, left, right)


def _tail(spec: LayerSpec, modules: list[nn.Module], features: int, flat: bool) -> None:
    """Batch norm, activation and dropout, in the seed's order, for the layer types that have them."""
    if spec.args.get("batch_norm"):
        modules.append(nn.BatchNorm1d(features) if flat else nn.BatchNorm2d(features))
    if spec.args.get("activation") in _ACTIVATIONS:
        modules.append(_ACTIVATIONS[spec["activation"]]())
    if spec.args.get("drop_out", 0) > 0:
        modules.append(nn.Dropout(spec["drop_out"] / 100))


def _seq(modules: list[nn.Module]) -> nn.Module:
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


def _conv(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    c, (oh, ow), (top, bottom, left, right) = _window(spec, shape, ctx, spec["stride"])
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
    _tail(spec, modules, n, flat=False)
    return Built(_seq(modules), (n, oh, ow), 2 * c * kh * kw * n * oh * ow)


class _AvgPoolSame(nn.Module):
    """Average pooling over real pixels only, for TensorFlow SAME padding that is uneven."""

    def __init__(self, kernel, stride, pads, in_hw):
        super().__init__()
        self.pad = nn.ZeroPad2d(pads)
        self.pool = nn.AvgPool2d(kernel, stride)
        ones = torch.ones(1, 1, *in_hw)
        self.register_buffer("scale", 1.0 / self.pool(self.pad(ones)), persistent=False)

    def forward(self, x):
        return self.pool(self.pad(x)) * self.scale


def _pool(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    stride = spec["stride"] or spec["kernel_size"]
    c, (oh, ow), (top, bottom, left, right) = _window(spec, shape, ctx, stride)
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
        modules.append(_AvgPoolSame(kernel, stride, (left, right, top, bottom), shape[1:]))
    _tail(spec, modules, c, flat=False)
    return Built(_seq(modules), (c, oh, ow))


def _flatten_into(modules: list[nn.Module], shape: Shape) -> int:
    if len(shape) == 3:
        modules.append(nn.Flatten())
    return math.prod(shape)


def _dense(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    modules: list[nn.Module] = []
    features = _flatten_into(modules, shape)
    n = ctx.num_classes if spec.type == "T" else spec["num_output"]
    if spec.type == "T" and spec["logit_scale"] != 1:
        modules.append(ScaledLinear(features, n, bias=spec["bias"], scale=spec["logit_scale"]))
    else:
        modules.append(nn.Linear(features, n, bias=spec["bias"]))
    if spec.type == "FC":
        _tail(spec, modules, n, flat=True)
    return Built(_seq(modules), (n,), 2 * features * n)


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


def _dropout(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    return Built(nn.Dropout(spec["drop_out"] / 100), shape)


def _activation(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    return Built(_ACTIVATIONS[spec["activation"]](), shape)


def _batch_norm(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    norm_class = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    norm = norm_class(shape[0], momentum=spec["momentum"])
    norm.weight.requires_grad_(spec["scale"])
    return Built(norm, shape)


def _global_avg_pool(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    if len(shape) != 3:
        raise ctx.fail(spec, "needs a spatial input but its input is already flat; put GAP before FC and F")
    return Built(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), (shape[0],))


def _flatten(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    return Built(nn.Flatten(), (math.prod(shape),))


class Residual(nn.Module):
    """activation(body(x) + shortcut(x)): a ResNet block written as a layer list."""

    def __init__(self, body: nn.Module, shortcut: nn.Module, activation: nn.Module):
        super().__init__()
        self.body, self.shortcut, self.activation = body, shortcut, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


def _projection(spec: LayerSpec, shape: Shape, out: Shape, ctx: Context) -> tuple[nn.Module, int]:
    """The shortcut: identity when the shape is kept, else a 1x1 convolution (stride chosen so that SAME gives
    the body's size) with batch norm when the body has it, or a linear map for flat shapes."""
    if out == shape:
        return nn.Identity(), 0
    if len(shape) == 1 and len(out) == 1:
        return nn.Linear(shape[0], out[0]), 2 * shape[0] * out[0]
    if len(shape) != 3 or len(out) != 3:
        raise ctx.fail(spec, f"its layers turn {'x'.join(map(str, shape))} into {'x'.join(map(str, out))}; a "
                             "residual block must keep its input either spatial or flat, not flatten it")
    strides = [next((st for st in range(1, i + 1) if math.ceil(i / st) == o), None) for i, o in zip(shape[1:], out[1:])]
    if None in strides:
        raise ctx.fail(spec, f"no 1x1 strided projection maps {shape[1]}x{shape[2]} to {out[1]}x{out[2]}; "
                             "use padding: same inside residual blocks")
    modules: list[nn.Module] = [nn.Conv2d(shape[0], out[0], 1, tuple(strides), bias=False)]
    if any(s.args.get("batch_norm") or s.type == "BN" for s in spec["layers"]):
        modules.append(nn.BatchNorm2d(out[0]))
    return _seq(modules), 2 * shape[0] * out[0] * out[1] * out[2]


def _residual(spec: LayerSpec, shape: Shape, ctx: Context) -> Built:
    blocks, flops, inner = [], 0, shape
    parent = f"{ctx.parent}layer {ctx.index} (R) > "
    for j, layer in enumerate(spec["layers"]):
        built = BUILDERS[layer.type](layer, inner, Context(j, ctx.input_shape, ctx.num_classes, parent))
        blocks.append(built.module)
        inner, flops = built.shape, flops + built.flops
    shortcut, extra = _projection(spec, shape, inner, ctx)
    act = _ACTIVATIONS[spec["activation"]]() if spec["activation"] else nn.Identity()
    return Built(Residual(nn.Sequential(*blocks), shortcut, act), inner, flops + extra)


BUILDERS: dict[str, Callable[[LayerSpec, Shape, Context], Built]] = {
    "C": _conv,
    "P": _pool,
    "FC": _dense,
    "T": _dense,
    "DO": _dropout,
    "A": _activation,
    "R": _residual,
    "BN": _batch_norm,
    "GAP": _global_avg_pool,
    "F": _flatten,
}


def describe(spec: LayerSpec) -> str:
    """A compact one-line reading of a spec for the table, e.g. `64 k3x3 s1x1 relu do8.3`."""
    a, parts = spec.args, []
    if spec.type == "R":
        inner = "; ".join(f"{s.type} {describe(s)}".strip() for s in a["layers"])
        return f"[{inner}] + input" + (f", {a['activation']}" if a["activation"] else "")
    if "pool" in a:
        parts.append(a["pool"])
    if "num_output" in a:
        parts.append(str(a["num_output"]))
    if "kernel_size" in a:
        parts.append("k{}x{}".format(*a["kernel_size"]))
        parts.append("s{}x{}".format(*(a["stride"] or a["kernel_size"])))
        if a["padding"] != "same":
            parts.append(f"pad {a['padding']}")
    if a.get("batch_norm"):
        parts.append("bn")
    if a.get("activation"):
        parts.append(a["activation"])
    if a.get("bias") is False:
        parts.append("no-bias")
    if a.get("init", "default") != "default":
        parts.append(f"init-{a['init']}")
    if a.get("freeze_weights"):
        parts.append("frozen")
    if a.get("scale") is False:
        parts.append("no-scale")
    if a.get("momentum", 0.1) != 0.1:
        parts.append(f"m{a['momentum']:g}")
    if a.get("logit_scale", 1) != 1:
        parts.append(f"x{a['logit_scale']:.3g}")
    if a.get("drop_out"):
        parts.append(f"do{a['drop_out']:g}")
    return " ".join(parts)


@dataclass(frozen=True)
class Row:
    index: int
    type: str
    args: str
    shape: Shape
    params: int
    flops: int


class Network(nn.Module):
    """The network a layer list declares; `forward` returns logits, `rows` the per-layer table."""

    def __init__(self, specs: list[LayerSpec], input_shape: Shape, num_classes: int):
        super().__init__()
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.output_activation = specs[-1]["activation"]
        blocks, rows, shape = [], [], self.input_shape
        for i, spec in enumerate(specs):
            built = BUILDERS[spec.type](spec, shape, Context(i, self.input_shape, num_classes))
            shape = built.shape
            params = sum(p.numel() for p in built.module.parameters())
            rows.append(Row(i, spec.type, describe(spec), shape, params, built.flops))
            blocks.append(built.module)
        self.layers = nn.Sequential(*blocks)
        self.rows = rows

    @property
    def num_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def matrix_weights(self) -> list[nn.Parameter]:
        """The trainable weights of C and FC layers (and residual projections): what Muon orthogonalises. Not the T
        classifier's, not whitening or frozen kernels, not biases or batch norm."""
        terminal = {id(p) for p in self.layers[-1].parameters()}
        return [m.weight for m in self.modules()
                if isinstance(m, nn.Conv2d | nn.Linear) and not isinstance(m, WhiteningConv2d)
                and m.weight.requires_grad and id(m.weight) not in terminal]

    @property
    def needs_data_init(self) -> bool:
        """Whether a layer's initialisation comes from the training images (`init: whiten`)."""
        return any(isinstance(m, WhiteningConv2d) for m in self.modules())

    def init_from_data(self, images: torch.Tensor) -> int:
        """Fit the data-dependent initialisations to these (normalised) training images; returns how many."""
        return whiten_from_data(self, images)

    def table(self) -> str:
        """Index, type, arguments, output shape, parameters and FLOPs per layer, then the totals."""
        head = ("#", "type", "args", "output", "params", "FLOPs")
        body = [(str(r.index), r.type, r.args, "x".join(map(str, r.shape)), f"{r.params:,}", f"{r.flops:,}")
                for r in self.rows]
        widths = [max(len(line[k]) for line in [head, *body]) for k in range(len(head))]
        lines = ["  ".join(c.ljust(w) if k < 4 else c.rjust(w) for k, (c, w) in enumerate(zip(line, widths)))
                 for line in [head, *body]]
        shape = "x".join(map(str, self.input_shape))
        lines.append(f"input {shape}, {self.num_classes} classes: {len(self.rows)} layers, "
                     f"{self.num_params:,} parameters, {self.flops / 1e6:,.2f} MFLOPs per image (forward)")
        return "\n".join(lines)


def build_network(layers, input_shape: Shape, num_classes: int) -> Network:
    """Check `layers` (a list of mappings or of `LayerSpec`) and build it for this input and class count."""
    specs = layers if layers and all(isinstance(s, LayerSpec) for s in layers) else parse_layers(layers)
    return Network(resize(specs), input_shape, num_classes)  # REPEAT blocks unrolled
