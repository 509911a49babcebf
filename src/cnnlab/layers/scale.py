"""Width and depth multipliers: one layer list, many sizes (`arch.width=1.5`, `arch.depth=2`).

`width` multiplies the `num_output` of every C and FC layer, rounded to a multiple of 8 (what vector units and
channels_last kernels like); the T classifier keeps the data set's class count and a whitening convolution keeps
the one filter per patch dimension it must have. `depth` multiplies the `times` of every REPEAT block. The result
has no REPEAT left: it is the list that is built, shown in the layer table and stored in checkpoints.
"""

from __future__ import annotations

from cnnlab.layers.spec import LayerSpec

CHANNEL_MULTIPLE = 8


def scaled_width(n: int, width: float) -> int:
    """`n` x `width`, to the nearest multiple of 8 (at least 8); `width` 1 keeps `n` as written."""
    if width == 1:
        return n
    return max(CHANNEL_MULTIPLE, round(n * width / CHANNEL_MULTIPLE) * CHANNEL_MULTIPLE)


def scaled_times(times: int, depth: float) -> int:
    return times if depth == 1 else max(1, round(times * depth))


def resize(specs: list[LayerSpec], width: float = 1.0, depth: float = 1.0) -> list[LayerSpec]:
    """The checked list at this width and depth, with REPEAT blocks unrolled (inside residual blocks too)."""
    out: list[LayerSpec] = []
    for spec in specs:
        if spec.type == "REPEAT":
            block = resize(spec["layers"], width, depth)
            out.extend(block * scaled_times(spec["times"], depth))
            continue
        args = dict(spec.args)
        if spec.type == "R":
            args["layers"] = resize(spec["layers"], width, depth)
        if spec.type in ("C", "FC") and args.get("init") != "whiten":
            args["num_output"] = scaled_width(args["num_output"], width)
        out.append(LayerSpec(spec.type, args))
    return out


def has_repeat(specs: list[LayerSpec]) -> bool:
    return any(s.type == "REPEAT" or (s.type == "R" and has_repeat(s["layers"])) for s in specs)


def has_matrix_layers(specs: list[LayerSpec]) -> bool:
    """Whether a C or FC layer has trainable weights (what optim=muon orthogonalises)."""
    for spec in specs:
        if spec.type in ("R", "REPEAT") and has_matrix_layers(spec["layers"]):
            return True
        if spec.type == "FC" or (spec.type == "C" and spec["init"] != "whiten" and not spec["freeze_weights"]):
            return True
    return False
