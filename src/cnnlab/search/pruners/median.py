"""`pruner=median`: a trial stops when its best validation error so far is worse than the median of the finished
trials' best at the same fidelity, from `after` epochs (or seconds) on, once 5 trials have finished (Optuna's
MedianPruner over epochs; over seconds, where no two trials report at the same second, the others' best up to that
second)."""

import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from cnnlab.checks.fields import non_negative
from cnnlab.checks.options import option
from cnnlab.search.pruners import Pruner, PrunerOptions


@dataclass(frozen=True, kw_only=True)
class MedianOptions(PrunerOptions):
    after: float = option(non_negative, 1, "no trial is stopped before this many epochs (or seconds) of training")


class Median(Pruner):
    name, Options = "median", MedianOptions

    @classmethod
    def make(cls, options: MedianOptions, budget, unit):
        if unit == "epochs":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=int(options.after))
        return SecondsMedian(options.after)


class SecondsMedian(optuna.pruners.BasePruner):
    """The median rule where reports come at any second: each finished trial's best error up to this trial's last
    report, against this trial's best."""

    def __init__(self, after: float, startup: int = 5):
        self.after, self.startup = after, startup

    def prune(self, study, trial) -> bool:
        step = trial.last_step
        if step is None or step < self.after or not trial.intermediate_values:
            return False
        others = [min(v for s, v in t.intermediate_values.items() if s <= step)
                  for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if any(s <= step for s in t.intermediate_values)]
        return len(others) >= self.startup and min(trial.intermediate_values.values()) > statistics.median(others)
