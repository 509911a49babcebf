"""`pruner=hyperband`: Optuna's HyperbandPruner over epochs: successive halving in brackets, 1 in `reduction_factor`
trials going on at each rung of `min_epochs` x factor^k epochs, up to the space's epochs."""

from dataclasses import dataclass

from cnnlab.checks.fields import OptionError, integer, positive_int
from cnnlab.checks.options import option
from cnnlab.search.pruners import Pruner, PrunerOptions


@dataclass(frozen=True, kw_only=True)
class HyperbandOptions(PrunerOptions):
    min_epochs: int = option(positive_int, 1, "the first rung, in epochs")
    reduction_factor: int = option(integer(2, example=3), 3, "1 in this many trials goes on at a rung")


class Hyperband(Pruner):
    name, Options = "hyperband", HyperbandOptions

    @classmethod
    def check(cls, options: HyperbandOptions, epochs: int) -> None:
        second = options.min_epochs * options.reduction_factor
        if second > epochs:
            raise OptionError(f"pruner=hyperband stops trials at rungs of {options.min_epochs}, {second}, ... epochs, "
                              f"and the trials train {epochs}: no rung comes before their end; give them at least "
                              f"{second} epochs (search.epochs), or a smaller pruner.min_epochs or "
                              "pruner.reduction_factor.")

    @classmethod
    def make(cls, options: HyperbandOptions, epochs: int):
        import optuna

        return optuna.pruners.HyperbandPruner(min_resource=options.min_epochs, max_resource=epochs,
                                              reduction_factor=options.reduction_factor)
