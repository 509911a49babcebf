"""The layer vocabulary (DESIGN.md §1): which fields each type takes, and the checks run before any work.

Pure Python on purpose: a layer list is checked here before torch builds anything or data is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnlab.checks.fields import (
    Checker,
    Field,
    boolean,
    choice,
    fraction,
    is_int,
    optional,
    pair,
    percent,
    positive_int,
    positive_number,
    suggest,
)
from cnnlab.errors import ArchError

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "silu")
activation = choice(*ACTIVATIONS, None)


def _padding(value: Any) -> str | int:
    if value in ("same", "valid") or (is_int(value) and value >= 0):
        return value
    raise ValueError("'same' (TensorFlow SAME: output = ceil(input / stride)), 'valid', or an int >= 0")


padding = Checker(_padding, ("full", -1, True))


def _nonempty_list(value: Any) -> list:
    if isinstance(value, list | tuple) and value:
        return list(value)
    raise ValueError("a non-empty list of layers, e.g. [{type: C, num_output: 64, kernel_size: 3}]")


layer_list = Checker(_nonempty_list, ([], "C", 3))


_DROP = Field(percent, 0.0, "dropout after the layer, in percent")
_ACT = Field(activation, "relu", "activation after the linear part")
_BN = Field(boolean, False, "batch norm between the linear part and the activation")
_BIAS = Field(boolean, True, "learn a bias")

LAYER_FIELDS: dict[str, dict[str, Field]] = {
    "C": {
        "num_output": Field(positive_int, help="output channels"),
        "kernel_size": Field(pair, help="kernel height and width"),
        "stride": Field(pair, 1, "stride"),
        "padding": Field(padding, "same", "'same' (TensorFlow SAME), 'valid' or an int"),
        "activation": _ACT,
        "batch_norm": _BN,
        "bias": _BIAS,
        "drop_out": _DROP,
        "init": Field(choice("default", "dirac", "whiten"), "default",
                      "'default' (PyTorch's), 'dirac' (identity on the first input channels) or 'whiten' (patch "
                      "whitening from the training images)"),
        "freeze_weights": Field(boolean, False, "keep the initial weights (the bias, if any, still trains)"),
    },
    "P": {
        "pool": Field(choice("max", "avg"), "max", "max or avg pooling"),
        "kernel_size": Field(pair, help="window height and width"),
        "stride": Field(optional(pair), None, "stride (default: the kernel size)"),
        "padding": Field(padding, "same", "'same' (TensorFlow SAME), 'valid' or an int"),
        "drop_out": _DROP,
    },
    "FC": {
        "num_output": Field(positive_int, help="output features"),
        "activation": _ACT,
        "batch_norm": _BN,
        "bias": _BIAS,
        "drop_out": _DROP,
    },
    "T": {
        "activation": Field(choice(None, "softmax"), None, "softmax: probabilities at prediction time"),
        "bias": _BIAS,
        "logit_scale": Field(positive_number, 1.0, "multiply the logits by this constant"),
    },
    "DO": {"drop_out": Field(percent, help="dropout in percent")},
    "A": {"activation": Field(choice(*ACTIVATIONS), help="activation on its own")},
    "R": {
        "layers": Field(layer_list, help="the block's own layer list (no T)"),
        "activation": Field(activation, "relu", "activation after the sum"),
    },
    "REPEAT": {
        "times": Field(positive_int, help="how many copies of its layers follow one another (x arch.depth)"),
        "layers": Field(layer_list, help="the layers to repeat (no T)"),
    },
    "BN": {
        "scale": Field(boolean, True, "learn a per-channel scale (false: fixed at 1, only the shift is learnt)"),
        "momentum": Field(fraction, 0.1, "weight of each new batch in the running statistics (PyTorch's)"),
    },
    "GAP": {},
    "F": {},
}

LAYER_HELP = {
    "C": "2-D convolution, [batch norm], activation, dropout",
    "P": "pooling, dropout",
    "FC": "dense layer (input flattened first), [batch norm], activation, dropout",
    "T": "terminal dense layer, one output per class of the data set; must be last",
    "DO": "dropout on its own",
    "A": "activation on its own",
    "R": "residual block: its layers, plus the input (projected when the shape changes), then activation",
    "REPEAT": "its layers, `times` times in a row (unrolled before building; arch.depth multiplies `times`)",
    "BN": "batch norm on its own",
    "GAP": "global average pooling (flattens)",
    "F": "flatten",
}


@dataclass(frozen=True)
class LayerSpec:
    """One checked layer: its type and every field, defaults filled in."""

    type: str
    args: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (every field, defaults filled in; pairs as lists): what checkpoints store."""
        out: dict[str, Any] = {"type": self.type}
        for name, value in self.args.items():
            if name == "layers":
                value = [s.to_dict() for s in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def _to_plain(value: Any) -> Any:
    """OmegaConf containers to Python ones, so that checks see lists and dicts only."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return value
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def parse_layer(index: int, raw: Any, parent: str = "") -> LayerSpec:
    """Check one layer mapping; the error names the layer, the field, the value and what is allowed.
    `parent` locates a layer inside a residual block: 'layer 3 (R) > '."""
    if not isinstance(raw, Mapping):
        raise ArchError(f"{parent}layer {index}: expected a mapping such as "
                        f"{{type: C, num_output: 64, kernel_size: 3}}, got {raw!r}.")
    if "_target_" in raw:
        raise ArchError(f"{parent}layer {index}: '_target_' is not allowed in a layer list: an architecture is data, "
                        f"never code to import. Use a layer type ({', '.join(LAYER_FIELDS)}).")
    kind = raw.get("type")
    if kind is None:
        raise ArchError(f"{parent}layer {index}: missing field 'type'; allowed types: {', '.join(LAYER_FIELDS)}.")
    if kind not in LAYER_FIELDS:
        raise ArchError(f"{parent}layer {index}: unknown type {kind!r}; allowed types: {', '.join(LAYER_FIELDS)}."
                        + suggest(str(kind), list(LAYER_FIELDS)))
    fields = LAYER_FIELDS[kind]
    where = f"{parent}layer {index} ({kind})"
    for name in raw:
        if name != "type" and name not in fields:
            allowed = ", ".join(fields) or "none"
            hint = suggest(name, list(fields))
            raise ArchError(f"{where}: unknown field {name!r}; fields of {kind}: {allowed}.{hint}")
    args = {}
    for name, spec in fields.items():
        if name not in raw:
            if spec.required:
                raise ArchError(f"{where}: missing required field {name!r} ({spec.help}).")
            args[name] = spec.check(spec.default)  # defaults in the same normal form as given values
            continue
        try:
            args[name] = spec.check(raw[name])
        except ValueError as err:
            raise ArchError(f"{where}: field {name!r} = {raw[name]!r} is not allowed; expected {err}.") from None
    if kind in ("R", "REPEAT"):
        args["layers"] = [parse_layer(j, r, f"{where} > ") for j, r in enumerate(args["layers"])]
        inner_t = [j for j, spec in enumerate(args["layers"]) if spec.type == "T"]
        if inner_t:
            block = "a residual block" if kind == "R" else "a REPEAT block"
            raise ArchError(f"{where} > layer {inner_t[0]} (T): the terminal layer cannot sit inside {block}; put "
                            "it last in the main list.")
    return LayerSpec(kind, args)


def parse_layers(layers: Any) -> list[LayerSpec]:
    """Check a whole layer list: every layer, then the rules between layers (one `T`, and last)."""
    layers = _to_plain(layers)
    if isinstance(layers, Mapping) and "layers" in layers:
        layers = layers["layers"]
    if not isinstance(layers, list | tuple) or not layers:
        raise ArchError(f"an architecture is a non-empty list of layers, got {layers!r}. "
                        "See README.md, 'Layer list reference'.")
    specs = [parse_layer(i, raw) for i, raw in enumerate(layers)]
    terminals = [i for i, s in enumerate(specs) if s.type == "T"]
    if not terminals:
        raise ArchError("the layer list has no terminal layer: end it with {type: T} "
                        "(its width is the data set's number of classes).")
    if terminals[0] != len(specs) - 1:
        first = terminals[0]
        raise ArchError(f"layer {first} (T): the terminal layer must be last, but layer {first + 1} "
                        f"({specs[first + 1].type}) follows it; remove the layers after T or move T to the end.")
    return specs
