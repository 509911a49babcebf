"""`kind: sequential` (conf/search/metaqnn.yaml), the layer-by-layer space: a layer list is built one
action at a time, MetaQNN's way (Baker et al., ICLR 2017). Each step is an Optuna categorical parameter named
after the current *state* (depth, last layer, spatial size, FC count and width) whose choices are the actions
legal there, so any Optuna sampler (random, TPE, or the Q-learning agent) walks the same space, and no illegal
list is ever drawn: the shapes come from cnnlab's own layer builders.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab.checks.errors import ArchError, ConfigError
from cnnlab.checks.fields import Checker, integer, number, positive_int, text
from cnnlab.checks.options import option
from cnnlab.layers.build import Context, build_layer
from cnnlab.layers.spec import parse_layer
from cnnlab.search.spaces import Draw, Space, SpaceOptions, layer_trial

STATE_PREFIX = "s"  # parameter names: s<depth>|<last>|<size>|<fc count>|<last fc width>
TERMINATE = "T"


mapping, listing = Checker(lambda v: dict(v or {}), ()), Checker(lambda v: list(v or []), ())


@dataclass(frozen=True, kw_only=True)
class SequentialOptions(SpaceOptions):
    """The actions, MetaQNN's limits, and the training settings every trial shares."""

    max_depth: int = option(integer(2), help="layers before T (a list needs at least one layer and T)")
    max_fc: int = option(integer(0), help="FC layers at most")
    fc_max_size: int = option(positive_int, help="FC layers only on maps of at most this many pixels a side")
    conv: Any = option(mapping, {}, "every combination of these C options is an action")
    pool: Any = option(mapping, {}, "every combination: a max-pooling action")
    fc: Any = option(mapping, {}, "every combination: an FC action")
    drop_out: Any = option(listing, [], "dropout actions, in percent")
    activation: str = option(text, "relu", "the activation of C and FC actions")
    lr: float = option(number(0, low_open=True), help="the learning rate of every trial")
    reg: float = option(number(0), help="the L2 penalty of every trial")
    batch_size: int = option(positive_int, help="the batch size of every trial")


@dataclass(frozen=True)
class State:
    depth: int  # layers so far (T excluded)
    last: str  # type of the last layer, "start" before the first
    shape: tuple[int, ...]  # its output shape
    fc: int = 0  # FC layers so far
    fc_width: int = 0  # width of the last FC layer

    @property
    def key(self) -> str:
        size = "x".join(map(str, self.shape[1:])) if len(self.shape) == 3 else "flat"
        return f"{STATE_PREFIX}{self.depth}|{self.last}|{size}|{self.fc}|{self.fc_width}"


def depth_of(param_name: str) -> int:
    return int(param_name[len(STATE_PREFIX):].split("|", 1)[0])


def _grid(options: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*(options[k] for k in keys))]


def action_name(spec: dict[str, Any]) -> str:
    """A short, unique name per action: C64k3s1bn, Pmax2s2, FC128, DO20 (padding other than same: ...-valid)."""
    kind = spec["type"]
    pad = f"-{spec['padding']}" if spec.get("padding", "same") != "same" else ""
    if kind == "C":
        bn = "bn" if spec.get("batch_norm") else ""
        return f"C{spec['num_output']}k{spec['kernel_size']}s{spec.get('stride', 1)}{bn}{pad}"
    if kind == "P":
        return f"P{spec['pool']}{spec['kernel_size']}s{spec.get('stride', spec['kernel_size'])}{pad}"
    if kind == "FC":
        return f"FC{spec['num_output']}"
    return f"DO{spec['drop_out']:g}"


class Sequential(Space):
    """The actions a space file declares, and which of them are legal in a state (checked against the data set's
    input shape when made)."""

    name, Options, walks_layers = "sequential", SequentialOptions, True

    def __init__(self, options: SequentialOptions, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__(options, input_shape, num_classes)
        space = options.to_dict()
        self.space, self.max_depth = space, space["max_depth"]
        self.hyper = {"lr": space["lr"], "reg": space["reg"], "batch_size": space["batch_size"]}
        act = space["activation"]
        specs = [{"type": "C", "activation": act, "padding": "same", **o} for o in _grid(space["conv"] or {})]
        specs += [{"type": "P", "pool": "max", **o} for o in _grid(space["pool"] or {})]
        specs += [{"type": "FC", **o, "activation": act} for o in _grid(space["fc"] or {})]
        specs += [{"type": "DO", "drop_out": d} for d in space["drop_out"] or []]
        self.actions: dict[str, dict[str, Any]] = {}
        for spec in specs:  # every action is a valid layer on its own, whatever the input
            try:
                parse_layer(0, spec)
            except ArchError as err:
                raise ConfigError(f"search space action {spec}: {str(err).removeprefix('layer 0 ')}") from None
            self.actions[action_name(spec)] = spec
        start = self.start()
        if not self.legal(start):
            raise ConfigError(f"search space: no action is legal at the first layer for the input "
                              f"{'x'.join(map(str, self.input_shape))} (every conv/pool collapses it and there is no "
                              "FC); T cannot be reached. Add smaller kernels, padding-preserving convolutions or FC "
                              "widths.")

    def start(self) -> State:
        return State(0, "start", self.input_shape)

    def _after(self, state: State, spec: dict[str, Any]) -> tuple[int, ...] | None:
        """The output shape of `spec` on the state's shape, by cnnlab's own builder; None if it does not fit."""
        layer = parse_layer(state.depth, spec)
        try:
            with torch.device("meta"):  # shapes only: no weights are allocated
                return build_layer(layer, state.shape, Context(state.depth, self.input_shape, self.num_classes)).shape
        except ArchError:
            return None

    def legal(self, state: State) -> list[str]:
        """MetaQNN's rules on cnnlab's layers: no layer past max_depth; T once something is there; no pool after a
        pool; FC only on small maps (spatial size <= fc_max_size), at most max_fc of them, each no wider than the
        one before; after an FC only FC, DO or T; no DO after a DO; nothing that collapses the map."""
        if state.depth >= self.max_depth:
            return [TERMINATE]
        legal = []
        flat = len(state.shape) == 1
        for name, spec in self.actions.items():
            kind = spec["type"]
            if kind in ("C", "P") and (flat or state.last == "FC"):
                continue
            if kind == "P" and state.last == "P":
                continue
            if kind == "DO" and state.last in ("DO", "start"):
                continue
            if kind == "FC":
                small = flat or max(state.shape[1:]) <= self.space["fc_max_size"]
                wider = state.fc_width and spec["num_output"] > state.fc_width
                if not small or state.fc >= self.space["max_fc"] or wider:
                    continue
            if self._after(state, spec) is not None:
                legal.append(name)
        if state.depth > 0:
            legal.append(TERMINATE)
        return legal

    def step(self, state: State, name: str) -> State:
        spec = self.actions[name]
        shape = self._after(state, spec)
        fc, width = (state.fc + 1, spec["num_output"]) if spec["type"] == "FC" else (state.fc, state.fc_width)
        return State(state.depth + 1, spec["type"], shape, fc, width)

    def walk(self, choose) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """A layer list, built by `choose(state_key, legal_actions)` at each state; and its (state, action) path."""
        state, layers, path = self.start(), [], []
        while True:
            legal = self.legal(state)
            name = choose(state.key, legal)
            path.append((state.key, name))
            if name == TERMINATE:
                return [*layers, {"type": "T"}], path
            layers.append(dict(self.actions[name]))
            state = self.step(state, name)

    def draw(self, trial: Any, base: Any, seed: int, out: Path, epochs: int, steps: int = -1) -> Draw:
        layers, _ = self.walk(lambda key, legal: trial.suggest_categorical(key, legal))
        return layer_trial(base, layers, dict(self.hyper), epochs, steps, seed, out)
