"""`kind: template` (conf/search/cnn_small.yaml): blocks of [C (+BN) -> activation -> pool -> dropout], then FC
layers, every choice a named Optuna parameter, plus the optimiser's lr, reg and batch size."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.options import option
from cnnlab.search.spaces import Draw, Space, SpaceOptions, dimension, draw, layer_trial


@dataclass(frozen=True, kw_only=True)
class TemplateOptions(SpaceOptions):
    blocks: Any = option(dimension, help="conv blocks")
    width: Any = option(dimension, help="output channels of each block")
    kernel: Any = option(dimension, help="kernel sizes")
    stride: Any = option(dimension, help="strides")
    pool: Any = option(dimension, help="pooling after each block: max, avg, none")
    batch_norm: Any = option(dimension, help="batch norm or not")
    activation: Any = option(dimension, help="activations")
    drop_out: Any = option(dimension, help="dropout per block, in percent")
    fc_layers: Any = option(dimension, help="FC layers")
    fc_width: Any = option(dimension, help="FC widths")
    lr: Any = option(dimension, help="learning rates")
    reg: Any = option(dimension, help="L2 penalties (model.reg)")
    batch_size: Any = option(dimension, help="batch sizes")
    width_multiplier: Any = option(dimension, [1.0], "x every sampled width, as arch.width does")


def sample_layers(trial: Any, space: TemplateOptions) -> list[dict[str, Any]]:
    """One layer list from the space (parameter names are per block, so that trials share them)."""
    from cnnlab.layers import parse_layers, resize

    layers: list[dict[str, Any]] = []
    activation = draw(trial, "activation", space.activation)
    for b in range(draw(trial, "blocks", space.blocks)):
        layers.append({"type": "C", "num_output": draw(trial, f"width_{b}", space.width),
                       "kernel_size": draw(trial, f"kernel_{b}", space.kernel),
                       "stride": draw(trial, f"stride_{b}", space.stride), "activation": activation,
                       "batch_norm": draw(trial, f"batch_norm_{b}", space.batch_norm)})
        pool = draw(trial, f"pool_{b}", space.pool)
        if pool != "none":
            layers.append({"type": "P", "pool": pool, "kernel_size": 2, "stride": 2})
        drop = round(draw(trial, f"drop_out_{b}", space.drop_out), 1)
        if drop > 0:
            layers.append({"type": "DO", "drop_out": drop})
    for f in range(draw(trial, "fc_layers", space.fc_layers)):
        layers.append({"type": "FC", "num_output": draw(trial, f"fc_width_{f}", space.fc_width),
                       "activation": activation})
    layers.append({"type": "T"})
    fixed = space.width_multiplier in ([1.0], [1])
    multiplier = 1.0 if fixed else draw(trial, "width_multiplier", space.width_multiplier)
    if multiplier != 1:  # as arch.width scales a list: C and FC widths to multiples of 8
        layers = [s.to_dict() for s in resize(parse_layers(layers), width=multiplier)]
    return layers


class Template(Space):
    name, Options = "template", TemplateOptions

    def draw(self, trial: Any, base: Any, seed: int, out: Path, epochs: int, steps: int = -1) -> Draw:
        layers = sample_layers(trial, self.options)
        hyper = {key: draw(trial, key, getattr(self.options, key)) for key in ("lr", "reg", "batch_size")}
        return layer_trial(base, layers, hyper, epochs, steps, seed, out)
