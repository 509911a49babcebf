"""A: an activation on its own (for orders such as conv -> pool -> BN -> activation)."""

from cnnlab.checks.fields import Field, choice
from cnnlab.layers.spec import ACTIVATIONS, LayerSpec, LayerType, register


def build(spec: LayerSpec, shape, ctx):
    from cnnlab.layers.build import Layer, activation_module

    return Layer(activation_module(spec["activation"]), shape)


register(LayerType("A", "activation on its own (for orders such as conv → pool → BN → activation)",
                   {"activation": Field(choice(*ACTIVATIONS), help="activation on its own")}, build))
