"""Evaluate a checkpoint on its test split: `python src/eval.py ckpt_path=<run>/checkpoints/best.ckpt`."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
from cnnlab.cli import run


def main(cfg) -> None:
    from cnnlab.cli import hydra_job
    from cnnlab.run.plans import check_eval

    plan = check_eval(cfg, hydra_job(), check_place=False)
    from cnnlab.run.tasks import evaluate

    evaluate(plan)


if __name__ == "__main__":
    run("eval", main)
