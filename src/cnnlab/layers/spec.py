"""The layer vocabulary (README.md "The layer list"): one `LayerType` record per type, registered by its own module in
`cnnlab/layers/types/`, and the checks every layer list passes before anything is built or any data is read.

Pure Python on purpose: a layer list is checked here before torch builds anything. A new layer type is one module
in `layers/types/` (its record: fields, builder, description, how it scales, what Muon takes) and its README row.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnlab.checks.errors import ArchError
from cnnlab.checks.fields import Checker, Field, boolean, choice, is_int, percent, suggest
from cnnlab.registry import load

MAX_NESTING = 50  # blocks inside blocks: deeper is a generated or hostile file, not a network (Python would recurse)
MAX_LAYERS = 10_000  # layers after REPEAT blocks are unrolled: far beyond any trainable list, reached in a blink

# activation name -> the torch.nn class that computes it (looked up by name where the network is built)
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU", "elu": "ELU",
               "leaky_relu": "LeakyReLU", "silu": "SiLU"}
activation = choice(*ACTIVATIONS, None)


def _padding(value: Any) -> str | int:
    if value in ("same", "valid") or (is_int(value) and value >= 0):
        return value
    raise ValueError("'same' (TensorFlow SAME: output = ceil(input / stride)), 'valid', or an int >= 0")


# fields several layer types share
PADDING = Field(Checker(_padding, ("full", -1, True)), "same", "'same' (TensorFlow SAME), 'valid' or an int")
DROP_OUT = Field(percent, 0.0, "dropout after the layer, in percent")
ACTIVATION = Field(activation, "relu", "activation after the linear part")
BATCH_NORM = Field(boolean, False, "batch norm between the linear part and the activation")
BIAS = Field(boolean, True, "learn a bias")


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


def never(spec: LayerSpec) -> bool:
    return False


def describe_args(spec: LayerSpec) -> str:
    """A compact one-line reading of a spec for the layer table, e.g. `64 k3x3 s1x1 relu do8.3`."""
    a, parts = spec.args, []
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
class LayerType:
    """Everything about one layer type, in its own module: `build(spec, shape, context) -> Built` (imports torch
    when called), `describe` for the layer table, `widens` (arch.width multiplies its num_output), `muon` (optim=muon
    takes its weights), `nested` (it holds a `layers` list), `unrolled` (REPEAT: expanded before building)."""

    name: str
    help: str
    fields: Mapping[str, Field]
    build: Callable[..., Any] | None
    describe: Callable[[LayerSpec], str] = describe_args
    widens: Callable[[LayerSpec], bool] = never
    muon: Callable[[LayerSpec], bool] = never
    nested: bool = False
    unrolled: bool = False


_TYPES: dict[str, LayerType] = {}


def register(layer_type: LayerType) -> LayerType:
    _TYPES[layer_type.name] = layer_type
    return layer_type


def layer_types() -> dict[str, LayerType]:
    """Every layer type, in the order of the README's table: each module of `cnnlab.layers.types` registers its own."""
    load("cnnlab.layers.types")
    return dict(sorted(_TYPES.items(), key=lambda item: ORDER.index(item[0]) if item[0] in ORDER else len(ORDER)))


ORDER = ("C", "P", "FC", "T", "DO", "A", "R", "REPEAT", "BN", "GAP", "F")  # the README's order; new types follow


def _nonempty_list(value: Any) -> list:
    if isinstance(value, list | tuple) and value:
        return list(value)
    raise ValueError("a non-empty list of layers, e.g. [{type: C, num_output: 64, kernel_size: 3}]")


layer_list = Checker(_nonempty_list, ([], "C", 3))


def _to_plain(value: Any) -> Any:
    """OmegaConf containers to Python ones, so that checks see lists and dicts only."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def parse_layer(index: int, raw: Any, parent: str = "", depth: int = 0) -> LayerSpec:
    """Check one layer mapping; the error names the layer, the field, the value and what is allowed.
    `parent` locates a layer inside a block: 'layer 3 (R) > '."""
    types = layer_types()
    if not isinstance(raw, Mapping):
        raise ArchError(f"{parent}layer {index}: expected a mapping such as "
                        f"{{type: C, num_output: 64, kernel_size: 3}}, got {raw!r:.200}.")
    if "_target_" in raw:
        raise ArchError(f"{parent}layer {index}: '_target_' is not allowed in a layer list: an architecture is data, "
                        f"never code to import. Use a layer type ({', '.join(types)}).")
    kind = raw.get("type")
    if kind is None:
        raise ArchError(f"{parent}layer {index}: missing field 'type'; allowed types: {', '.join(types)}.")
    if kind not in types:
        raise ArchError(f"{parent}layer {index}: unknown type {kind!r}; allowed types: {', '.join(types)}."
                        + suggest(str(kind), list(types)))
    layer_type = types[kind]
    where = f"{parent}layer {index} ({kind})"
    for name in raw:
        if name != "type" and name not in layer_type.fields:
            allowed = ", ".join(layer_type.fields) or "none"
            raise ArchError(f"{where}: unknown field {name!r}; fields of {kind}: {allowed}."
                            + suggest(name, list(layer_type.fields)))
    args = {}
    for name, spec in layer_type.fields.items():
        if name not in raw:
            if spec.required:
                raise ArchError(f"{where}: missing required field {name!r} ({spec.help}).")
            args[name] = spec.check(spec.default)  # defaults in the same normal form as given values
            continue
        try:
            args[name] = spec.check(raw[name])
        except ValueError as err:
            raise ArchError(f"{where}: field {name!r} = {raw[name]!r:.200} is not allowed; expected {err}.") from None
    if layer_type.nested:
        if depth >= MAX_NESTING:
            raise ArchError(f"{where}: blocks nested more than {MAX_NESTING} deep; a layer list nests R and REPEAT "
                            "blocks a few levels at most (is the file generated by mistake?).")
        args["layers"] = [parse_layer(j, r, f"{where} > ", depth + 1) for j, r in enumerate(args["layers"])]
        inner_t = [j for j, spec in enumerate(args["layers"]) if spec.type == "T"]
        if inner_t:
            block = "a residual block" if kind == "R" else f"a {kind} block"
            raise ArchError(f"{where} > layer {inner_t[0]} (T): the terminal layer cannot sit inside {block}; put "
                            "it last in the main list.")
    return LayerSpec(kind, args)


def parse_layers(layers: Any) -> list[LayerSpec]:
    """Check a whole layer list: every layer, then the rules between layers (one `T`, and last)."""
    layers = _to_plain(layers)
    if isinstance(layers, Mapping) and "layers" in layers:
        layers = layers["layers"]
    if not isinstance(layers, list | tuple) or not layers:
        raise ArchError(f"an architecture is a non-empty list of layers, got {layers!r:.200}. See README.md, "
                        "'The layer list'.")
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


def describe(spec: LayerSpec) -> str:
    return layer_types()[spec.type].describe(spec)


def compact(layers: list[dict[str, Any]]) -> str:
    """A layer list on one line: `C 32 k3x3 s1x1 relu | P max k2x2 s2x2 | FC 128 relu | T`."""
    return " | ".join(f"{s.type} {describe(s)}".strip() for s in parse_layers(layers))


def muon_layers(specs: list[LayerSpec]) -> bool:
    """Whether any layer has weights that optim=muon orthogonalises (inside blocks too)."""
    types = layer_types()
    return any(types[s.type].muon(s) or (types[s.type].nested and muon_layers(s["layers"])) for s in specs)
