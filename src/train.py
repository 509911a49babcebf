"""Train a layer-list CNN: `python src/train.py arch=seed data=digits optim=adam` (see README.md)."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
from cnnlab.cli import run


def main(cfg) -> float | None:
    from cnnlab.cli import hydra_job
    from cnnlab.run.plans import check_train

    plan = check_train(cfg, hydra_job(), check_place=False)  # every value, before anything is built or read
    from cnnlab.run.tasks import train  # torch and Lightning: after the checks, so that a mistake costs a second

    return train(plan).get("val/acc")


if __name__ == "__main__":
    run("train", main)
