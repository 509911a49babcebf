"""Winners confirmed over seeds (`search.confirm.top=K search.confirm.seeds=S`): one run of a recipe differs from
the next by more than the margins a search looks for, so after the study the best K trials are trained again with
the same S seeds each (paired), at the budget you will train with, and the hand-over names the best mean of
validation errors. Each run is the trial's own hand-over command (`experiment/trial_<n>.yaml`) with another seed:
what is confirmed is what you will run. confirm.csv holds every run."""

import csv
import functools
import logging
import statistics
from dataclasses import dataclass

import optuna

from cnnlab.search import handover

log = logging.getLogger("cnnlab.search")


@dataclass
class Confirmed:
    number: int  # the trial
    errors: list[float]  # the best validation error of each seed's run

    @property
    def mean(self) -> float:
        return statistics.mean(self.errors)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.errors) if len(self.errors) > 1 else 0.0

    def text(self) -> str:
        return f"{self.mean:.4f} +- {self.sd:.4f} over {len(self.errors)} seeds"


def plan_of(search, number: int, seed: int, epochs: int, steps: int = -1):
    """Trial `number`'s hand-over experiment as train.py would run it, at this seed and length, quietly."""
    import dataclasses

    from cnnlab.compose import compose
    from cnnlab.run.plans import check_train

    out = search.out_dir / "confirm" / f"{number}-{seed}"
    config = compose("train", f"hydra.searchpath=[file://{search.out_dir}]", f"experiment=trial_{number}",
                     f"seed={seed}", f"trainer.max_epochs={epochs}", f"trainer.max_steps={steps}",
                     f"paths.output_dir={out}", f"paths.data_dir={search.plan.base.data_dir}", *handover.QUIET)
    return dataclasses.replace(check_train(config, check_place=False), quiet=True)


def confirm(search, study: optuna.Study) -> list[Confirmed]:
    """The best `top` complete trials (by validation error) trained again over `seeds` seeds; best mean first."""
    from cnnlab.search.trial import run_at

    options = search.plan.space.confirm
    unit = "epochs" if options.epochs else "seconds" if options.seconds else search.unit
    budget = options.epochs or options.seconds or search.budget
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    candidates = sorted(complete, key=lambda t: t.values[0])[:options.top]
    seeds = [search.plan.base.run.seed + 10_000 + k for k in range(options.seeds)]  # the same for every candidate
    log.info("confirming the best %d trials (%s) over %d seeds each, %g %s per run", len(candidates),
             ", ".join(str(t.number) for t in candidates), len(seeds), budget, unit)
    results, rows = [], []
    for trial in candidates:
        handover.write_trial(search, trial)
        errors = []
        for seed in seeds:
            make = functools.partial(plan_of, search, trial.number, seed)  # (epochs, steps) -> the run's plan
            outcome = run_at(make, search.datamodule_for, unit, budget)
            errors.append(outcome.best)
            rows.append({"trial": trial.number, "seed": seed, "val_err": outcome.best, "epochs": outcome.epochs,
                         "steps": outcome.steps, "seconds": outcome.seconds, "images_per_s": outcome.images_per_s})
            log.info("trial %d, seed %d: best validation error %.4f", trial.number, seed, outcome.best)
        results.append(Confirmed(trial.number, errors))
    results.sort(key=lambda c: c.mean)
    with open(search.out_dir / "confirm.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nconfirmed over {len(seeds)} seeds ({budget:g} {unit} each; validation error, best mean first):")
    for c in results:
        single = next(t.values[0] for t in candidates if t.number == c.number)
        print(f"  trial {c.number:4d}  {c.text()}  (its search run: {single:.4f})")
    return results
