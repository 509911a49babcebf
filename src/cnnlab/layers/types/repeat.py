"""REPEAT: its layers, `times` times in a row; unrolled before building (arch.depth multiplies `times`)."""

from cnnlab.checks.fields import Field, positive_int
from cnnlab.layers.spec import LayerSpec, LayerType, layer_list, register


def describe(spec: LayerSpec) -> str:
    from cnnlab.layers.spec import describe as one

    return f"{spec['times']} x [" + "; ".join(f"{s.type} {one(s)}".strip() for s in spec["layers"]) + "]"


register(LayerType(
    "REPEAT", "its `layers`, `times` times in a row (no `T` inside); `arch.depth` multiplies `times`",
    {
        "times": Field(positive_int, help="how many copies of its layers follow one another (x arch.depth)"),
        "layers": Field(layer_list, help="the layers to repeat (no T)"),
    },
    None, describe, nested=True, unrolled=True,
))
