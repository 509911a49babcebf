"""Pruners (`pruner=` in conf/pruner/): which trials stop early. One module per pruner registers a `Pruner` with its
options: `median` (the default in conf/search.yaml), `hyperband`, `none`. Optuna prunes single-objective studies
only. A trial reports its validation error at each validation, the step being its fidelity so far: epochs trained,
or whole seconds of its own training. `pruner=null` is no pruning too."""

from dataclasses import dataclass
from typing import Any, ClassVar

from cnnlab.checks.fields import text
from cnnlab.checks.options import Options, option
from cnnlab.registry import Kind


@dataclass(frozen=True, kw_only=True)
class PrunerOptions(Options):
    where = "pruner."
    name: str = option(text, help="the pruner (conf/pruner/<name>.yaml)")


class Pruner(Kind):
    package, group = "cnnlab.search.pruners", "pruner"
    _kinds: ClassVar[dict[str, type]] = {}
    Options = PrunerOptions

    @classmethod
    def check(cls, options: PrunerOptions, budget: float, unit: str) -> None:
        """Before the first trial: the pruner against the trials' budget (in `unit`: epochs or seconds)."""

    @classmethod
    def make(cls, options: PrunerOptions, budget: float, unit: str) -> Any:
        """Optuna's pruner for trials of this budget."""
        import optuna

        return optuna.pruners.NopPruner()
