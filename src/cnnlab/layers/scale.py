"""Width and depth multipliers (`arch.width=1.5`, `arch.depth=2`): `width` multiplies the `num_output` of every type
that widens, to a multiple of 8 (the classifier and whitening layers keep their own); `depth` multiplies every REPEAT
block's `times`. The result, with no REPEAT left, is the list built, tabled and stored in checkpoints."""

from cnnlab.checks.errors import ArchError
from cnnlab.layers.spec import MAX_LAYERS, LayerSpec, layer_types

CHANNEL_MULTIPLE = 8


def scaled_width(n: int, width: float) -> int:
    """`n` x `width`, to the nearest multiple of 8 (at least 8); `width` 1 keeps `n` as written."""
    if width == 1:
        return n
    return max(CHANNEL_MULTIPLE, round(n * width / CHANNEL_MULTIPLE) * CHANNEL_MULTIPLE)


def scaled_times(times: int, depth: float) -> int:
    return times if depth == 1 else max(1, round(times * depth))


def count(specs: list[LayerSpec], depth: float = 1.0) -> int:
    """Layers once REPEAT blocks are unrolled (blocks inside blocks counted), without unrolling them."""
    types, total = layer_types(), 0
    for spec in specs:
        if types[spec.type].unrolled:
            total += scaled_times(spec["times"], depth) * count(spec["layers"], depth)
        else:
            total += 1 + (count(spec["layers"], depth) if types[spec.type].nested else 0)
    return total


def resize(specs: list[LayerSpec], width: float = 1.0, depth: float = 1.0) -> list[LayerSpec]:
    """The checked list at this width and depth, with REPEAT blocks unrolled (inside residual blocks too)."""
    layers = count(specs, depth)
    if layers > MAX_LAYERS:
        raise ArchError(f"the layer list unrolls to {layers:,} layers (REPEAT times x arch.depth); more than "
                        f"{MAX_LAYERS:,} is not a network this machine could train: lower 'times' or arch.depth.")
    return _resize(specs, width, depth)


def _resize(specs: list[LayerSpec], width: float, depth: float) -> list[LayerSpec]:
    types, out = layer_types(), []
    for spec in specs:
        kind = types[spec.type]
        if kind.unrolled:
            out.extend(_resize(spec["layers"], width, depth) * scaled_times(spec["times"], depth))
            continue
        args = dict(spec.args)
        if kind.nested:
            args["layers"] = _resize(spec["layers"], width, depth)
        if kind.widens(spec):
            args["num_output"] = scaled_width(args["num_output"], width)
        out.append(LayerSpec(spec.type, args))
    return out


def has_repeat(specs: list[LayerSpec]) -> bool:
    types = layer_types()
    return any(types[s.type].unrolled or (types[s.type].nested and has_repeat(s["layers"])) for s in specs)
