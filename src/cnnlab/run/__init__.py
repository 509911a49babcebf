"""Runs: the plans train.py and eval.py check their configs into (`plans`, with the Trainer's options in `trainer` and
a resume's checks in `resume`), `build(plan)` that assembles a training run, `tasks` (what train.py and eval.py do)
and `lightning`, the workarounds for Lightning behaviour, each saying what it works around."""
