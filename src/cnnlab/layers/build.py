"""Layer list -> `nn.Module`: each layer built by its type's record (`layers/types/`), shapes inferred from the data
set's input shape; the parts the builders share (SAME padding, the batch norm / activation / dropout tail).

Padding 'same' is TensorFlow's: output = ceil(input / stride), the extra pixel after (bottom/right) when the total
is odd, as the seed's TensorFlow network did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnlab.checks.errors import ArchError
from cnnlab.layers.init import WhiteningConv2d, whiten_from_data
from cnnlab.layers.scale import resize
from cnnlab.layers.spec import ACTIVATIONS, LayerSpec, describe, layer_types, parse_layers

Shape = tuple[int, ...]


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

    def inside(self, index: int, spec: LayerSpec) -> Context:
        return Context(index, self.input_shape, self.num_classes, f"{self.parent}layer {self.index} ({spec.type}) > ")


@dataclass
class Layer:
    """What a builder returns: the module, its output shape, its forward FLOPs per image, and the weights that
    optim=muon orthogonalises."""

    module: nn.Module
    shape: Shape
    flops: int = 0
    matrices: list[nn.Parameter] = field(default_factory=list)


def build_layer(spec: LayerSpec, shape: Shape, ctx: Context) -> Layer:
    return layer_types()[spec.type].build(spec, shape, ctx)


def activation_module(name: str | None) -> nn.Module:
    return getattr(nn, ACTIVATIONS[name])() if name else nn.Identity()


def _axis(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int, int]:
    """Output size and the padding before and after, along one axis."""
    if padding == "same":
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2, total - total // 2
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1, pad, pad


def window(spec: LayerSpec, shape: Shape, ctx: Context, stride: tuple[int, int]):
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


def tail(spec: LayerSpec, modules: list[nn.Module], features: int, flat: bool) -> None:
    """Batch norm, activation and dropout, in the seed's order, for the layer types that have them."""
    if spec.args.get("batch_norm"):
        modules.append(nn.BatchNorm1d(features) if flat else nn.BatchNorm2d(features))
    if spec.args.get("activation"):
        modules.append(activation_module(spec["activation"]))
    if spec.args.get("drop_out", 0) > 0:
        modules.append(nn.Dropout(spec["drop_out"] / 100))


def sequence(modules: list[nn.Module]) -> nn.Module:
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


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
        blocks, rows, shape, matrices = [], [], self.input_shape, []
        for i, spec in enumerate(specs):
            built = build_layer(spec, shape, Context(i, self.input_shape, num_classes))
            shape = built.shape
            params = sum(p.numel() for p in built.module.parameters())
            rows.append(Row(i, spec.type, describe(spec), shape, params, built.flops))
            blocks.append(built.module)
            matrices += built.matrices
        self.layers = nn.Sequential(*blocks)
        self.rows = rows
        self._matrices = [id(p) for p in matrices]

    @property
    def num_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def flops(self) -> int:
        return sum(r.flops for r in self.rows)

    @property
    def activations(self) -> int:
        """Values per image that the layers output (what training keeps for the backward pass, roughly)."""
        return sum(math.prod(r.shape) for r in self.rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def matrix_weights(self) -> list[nn.Parameter]:
        """The weights optim=muon orthogonalises, as the layer types' builders named them (C and FC weights and
        residual projections, the T classifier if its `muon` says so; not whitening or frozen kernels, biases or
        batch norm)."""
        wanted = set(self._matrices)
        return [p for p in self.parameters() if id(p) in wanted and p.requires_grad]

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


def memory_needed(specs: list[LayerSpec], input_shape: Shape, num_classes: int, batch_size: int) -> tuple[int, int]:
    """(parameters, bytes a training step needs, roughly), from the network built on the meta device (no memory):
    each float32 parameter with its gradient and two optimizer states, each layer output kept for the backward pass
    with its gradient, for the whole batch."""
    with torch.device("meta"):
        net = Network(resize(specs), input_shape, num_classes)
    return net.num_params, 16 * net.num_params + 8 * net.activations * batch_size
