"""FC: a dense layer (its input flattened first), then [batch norm], activation and dropout."""

from cnnlab.checks.fields import Field, positive_int
from cnnlab.layers.spec import ACTIVATION, BATCH_NORM, BIAS, DROP_OUT, LayerSpec, LayerType, register


def flatten_into(modules: list, shape) -> int:
    """Appends a Flatten for a spatial input; returns the number of features."""
    import math

    from torch import nn

    if len(shape) == 3:
        modules.append(nn.Flatten())
    return math.prod(shape)


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer, sequence, tail

    modules: list[nn.Module] = []
    features = flatten_into(modules, shape)
    linear = nn.Linear(features, spec["num_output"], bias=spec["bias"])
    modules.append(linear)
    tail(spec, modules, spec["num_output"], flat=True)
    return Layer(sequence(modules), (spec["num_output"],), 2 * features * spec["num_output"], [linear.weight])


register(LayerType(
    "FC", "dense layer (input flattened first) → [batch norm] → activation → dropout",
    {
        "num_output": Field(positive_int, help="output features"),
        "activation": ACTIVATION,
        "batch_norm": BATCH_NORM,
        "bias": BIAS,
        "drop_out": DROP_OUT,
    },
    build, widens=lambda spec: True, muon=lambda spec: True,
))
