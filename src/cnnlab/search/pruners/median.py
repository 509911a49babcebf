"""`pruner=median`: a trial stops when its validation error is worse than the median of the earlier trials' at the
same epoch, from epoch `from_epoch` on, once 5 trials have finished (Optuna's MedianPruner)."""

from dataclasses import dataclass

from cnnlab.checks.fields import positive_int
from cnnlab.checks.options import option
from cnnlab.search.pruners import Pruner, PrunerOptions


@dataclass(frozen=True, kw_only=True)
class MedianOptions(PrunerOptions):
    from_epoch: int = option(positive_int, 1, "the first epoch after which a trial may be stopped")


class Median(Pruner):
    name, Options = "median", MedianOptions

    @classmethod
    def make(cls, options: MedianOptions, epochs: int):
        import optuna

        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=options.from_epoch)
