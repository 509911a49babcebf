"""Runs: `build(plan)` assembles a training run from its checked plan; `tasks` are what train.py and eval.py do;
`lightning` holds the workarounds for Lightning behaviour, each saying what it works around."""

from cnnlab.run.build import Built, build, make_trainer
from cnnlab.run.tasks import evaluate, train

__all__ = ["Built", "build", "evaluate", "make_trainer", "train"]
