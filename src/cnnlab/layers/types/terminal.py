"""T: the terminal dense layer, one output per class of the data set (never written in the list); last."""

from cnnlab.checks.fields import Field, boolean, choice, positive_number
from cnnlab.layers.spec import BIAS, LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    from torch import nn

    from cnnlab.layers.build import Layer, sequence
    from cnnlab.layers.modules import ScaledLinear
    from cnnlab.layers.types.dense import flatten_into

    modules: list[nn.Module] = []
    features, n = flatten_into(modules, shape), ctx.num_classes
    if spec["logit_scale"] != 1:
        modules.append(ScaledLinear(features, n, bias=spec["bias"], scale=spec["logit_scale"]))
    else:
        modules.append(nn.Linear(features, n, bias=spec["bias"]))
    return Layer(sequence(modules), (n,), 2 * features * n, [modules[-1].weight] if spec["muon"] else [])


register(LayerType(
    "T", "terminal dense layer: one output per class of the data set; must be last",
    {
        "activation": Field(choice(None, "softmax"), None, "softmax: probabilities at prediction time"),
        "bias": BIAS,
        "logit_scale": Field(positive_number, 1.0, "multiply the logits by this constant"),
        "muon": Field(boolean, False, "optim=muon orthogonalises this weight too (the CIFAR-100 speedrun's choice); "
                                      "false: the other optimizer takes it"),
    },
    build,
))
