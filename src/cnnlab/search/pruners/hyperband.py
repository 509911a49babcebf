"""`pruner=hyperband`: Optuna's HyperbandPruner over the fidelity (epochs or seconds): successive halving in
brackets, 1 in `reduction_factor` trials going on at each rung of `min_resource` x factor^k, up to each trial's
budget."""

from dataclasses import dataclass

from cnnlab.checks.fields import OptionError, integer, positive_number
from cnnlab.checks.options import option
from cnnlab.search.pruners import Pruner, PrunerOptions


@dataclass(frozen=True, kw_only=True)
class HyperbandOptions(PrunerOptions):
    min_resource: float = option(positive_number, 1, "the first rung, in the fidelity's unit (epochs or seconds)")
    reduction_factor: int = option(integer(2, example=3), 3, "1 in this many trials goes on at a rung")


class Hyperband(Pruner):
    name, Options = "hyperband", HyperbandOptions

    @classmethod
    def check(cls, options: HyperbandOptions, budget, unit) -> None:
        second = options.min_resource * options.reduction_factor
        if second > budget:
            raise OptionError(f"pruner=hyperband stops trials at rungs of {options.min_resource:g}, {second:g}, ... "
                              f"{unit}, and the trials train {budget:g}: no rung comes before their end; give them at "
                              f"least {second:g} {unit} (search.{unit}), or a smaller pruner.min_resource or "
                              "pruner.reduction_factor.")

    @classmethod
    def make(cls, options: HyperbandOptions, budget, unit):
        import math

        import optuna

        return optuna.pruners.HyperbandPruner(min_resource=max(1, math.floor(options.min_resource)),
                                              max_resource=math.ceil(budget),
                                              reduction_factor=options.reduction_factor)
