"""One trial at its fidelity: the space's draw trained through the same plan-and-build path as `train.py`, its budget
counted in epochs or in seconds of its own training (validation apart), its validation error reported to the pruner
at the fidelity so far, and its best error, seconds and images per second kept for the study.

At `fidelity=seconds` a trial first times a few training steps, then trains the whole epochs and steps that fit its
budget (so that its schedule spans them) and stops at the budget whatever the estimate said, with a last
validation. Trials on one machine (`n_workers`) each train with their share of the cores, so that seconds mean the
same for all; the time measured is each trial's own."""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl

from cnnlab.checks.errors import ConfigError
from cnnlab.run.build import build

log = logging.getLogger("cnnlab.search")


@dataclass
class Outcome:
    best: float  # the lowest validation error of the run
    epochs: int
    steps: int
    seconds: float  # of its own training
    images_per_s: float
    pruned: bool = False


class Fidelity(pl.Callback):
    """Counts the run's training seconds and images, reports each validation's error to `trial`'s pruner (if any) at
    the fidelity so far, and stops the run at its seconds budget or when the pruner says so."""

    def __init__(self, unit: str, budget: float, trial: Any = None):
        self.unit, self.budget, self.trial = unit, budget, trial
        self.best, self.epochs, self.steps, self.seconds, self.images, self.pruned = math.inf, 0, 0, 0.0, 0, False
        self.step_s: list[float] = []  # each training step's seconds, data loading included
        self._since, self._said, self._reported, self.final = None, time.monotonic(), -1.0, False

    def done(self) -> float:
        return self.epochs if self.unit == "epochs" else self.seconds

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._since = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.step_s.append(now - self._since)
        self.seconds, self.images, self._since = self.seconds + now - self._since, self.images + len(batch[1]), now
        self.steps += 1
        if self.unit == "seconds" and self.seconds >= self.budget:
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module) -> None:
        self._since = time.perf_counter()  # validation is not the trial's training time
        if trainer.sanity_checking or "val/err" not in trainer.callback_metrics:
            return
        err = float(trainer.callback_metrics["val/err"])
        self.best, self.epochs = min(self.best, err), trainer.current_epoch + 1
        done = self.done() if self.unit == "epochs" else math.floor(self.seconds)
        if self.trial is not None and time.monotonic() - self._said >= 60:  # a long trial is never silent
            self._said = time.monotonic()
            log.info("trial %d: %s of %g %s, validation error %.4f (best %.4f)", self.trial.number,
                     f"{done:g}", self.budget, self.unit, err, self.best)
        if self.trial is None or done <= self._reported:
            return
        self._reported = done
        self.trial.report(err, done)
        # a trial at the end of its budget has trained it: complete, whatever a rung there would say
        if not self.final and done < self.budget * 0.999 and self.trial.should_prune():
            self.pruned, trainer.should_stop = True, True


def fitting(plan, datamodule, seconds: float, probe_steps: int = 6) -> tuple[int, int]:
    """(epochs, steps) of `plan`'s run that fit `seconds` of training, from the median of its timed steps (the
    first two, warm-up, left out)."""
    probe = plan.replace(trainer=dataclasses.replace(
        plan.trainer, max_steps=probe_steps, max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0))
    timer = Fidelity("epochs", 1)
    run = build(probe, datamodule, [timer])
    run.trainer.fit(run.model, datamodule=run.datamodule)
    per_step = statistics.median(timer.step_s[2:] or timer.step_s)
    if per_step > seconds:
        raise ConfigError(f"search.seconds = {seconds:g} is shorter than one training step of this trial "
                          f"({per_step:.2f} s at data.batch_size={plan.data.batch_size}): give each trial several "
                          "steps' time, or a smaller batch.")
    steps = int(seconds / per_step)
    per_epoch = max(1, int(run.trainer.num_training_batches))
    return math.ceil(steps / per_epoch), steps


def train_for(plan, datamodule, unit: str, budget: float, trial: Any = None) -> Outcome:
    """Fit `plan` (already at its budget) with a Fidelity counter; at seconds, a last validation if the run stopped
    after the one before."""
    fidelity = Fidelity(unit, budget, trial)
    run = build(plan, datamodule, [fidelity])
    run.trainer.fit(run.model, datamodule=run.datamodule)
    if unit == "seconds" and not fidelity.pruned and math.floor(fidelity.seconds) > fidelity._reported:
        fidelity.final = True
        run.trainer.validate(run.model, datamodule=run.datamodule, verbose=False)
    return Outcome(fidelity.best, fidelity.epochs, fidelity.steps, round(fidelity.seconds, 2),
                   round(fidelity.images / max(fidelity.seconds, 1e-9), 1), fidelity.pruned)


def run_at(make, datamodule_for, unit: str, budget: float, trial: Any = None, plan: Any = None) -> Outcome:
    """`make(epochs, steps)`'s plan trained at the budget: at seconds, the epochs and steps that fit it are timed on
    the plan's own steps first. `plan`: make's first one (the budget's epochs, or 1 at seconds), if already made."""
    plan = plan or make(int(budget) if unit == "epochs" else 1, -1)
    if unit == "seconds":
        plan = make(*fitting(plan, datamodule_for(plan), budget))
    return train_for(plan, datamodule_for(plan), unit, budget, trial)
