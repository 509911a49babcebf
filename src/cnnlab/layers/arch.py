"""`arch.*`: the layer list (inline `layers`, or a file at `path`) at `width` and `depth`, parsed once."""

from dataclasses import dataclass
from typing import Any

from cnnlab.checks.errors import ArchError
from cnnlab.checks.fields import Checker, OptionError, number
from cnnlab.checks.options import Options, option
from cnnlab.layers.io import load_layers
from cnnlab.layers.scale import has_repeat, resize
from cnnlab.layers.spec import LayerSpec, parse_layers

anything = Checker(lambda value: value, ())
multiplier = number(0, low_open=True, example=1.5)


@dataclass(frozen=True, kw_only=True)
class ArchOptions(Options):
    where = "arch."

    name: str | None = option(anything, None, "the architecture's name (conf/arch/<name>.yaml)")
    layers: Any = option(anything, None, "the layer list")
    path: str | None = option(anything, None, "a file holding the layer list (YAML, JSON or the seed's Python list)")
    width: float = option(multiplier, 1.0, "x the num_output of every C and FC layer (to a multiple of 8)")
    depth: float = option(multiplier, 1.0, "x the times of every REPEAT block")


@dataclass(frozen=True)
class Arch:
    """The list as it is built: REPEAT blocks unrolled, widths scaled; `raw` is what checkpoints store."""

    name: str | None
    specs: tuple[LayerSpec, ...]

    @property
    def raw(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.specs]


def read_arch(values: dict[str, Any]) -> Arch:
    """The arch config, checked: the list as the user wrote it (errors name its positions), then at its size."""
    options = ArchOptions.read(values)
    if options.path in (None, "???") and options.layers is None:
        raise ArchError(f"arch={options.name or 'file'} needs arch.path=FILE: a layer list in YAML, JSON or the seed's "
                        "Python form (relative to where you run the command), or an inline arch.layers list.")
    if options.path and options.layers:
        raise ArchError("the arch config sets both 'layers' and 'path'; keep one.")
    raw = load_layers(options.path) if options.path else options.layers
    specs = parse_layers(raw)  # raises ArchError naming the layer and field, as the user wrote them
    if options.depth != 1 and not has_repeat(specs):
        raise OptionError(f"arch.depth = {options.depth:g}, but the layer list has no REPEAT block whose 'times' it "
                          "could multiply; wrap the layers to repeat in {type: REPEAT, times: N, layers: [...]} or "
                          "leave arch.depth at 1.")
    return Arch(options.name, tuple(resize(specs, options.width, options.depth)))


def same_layers(a: list, b: list) -> bool:
    """Whether two stored layer lists build the same network (an older cnnlab's checkpoint holds the list as written,
    a newer one every field filled in)."""
    try:
        return [s.to_dict() for s in resize(parse_layers(a))] == [s.to_dict() for s in resize(parse_layers(b))]
    except ArchError:
        return False
