"""Train a layer-list CNN: `python src/train.py arch=seed data=digits optim=adam` (see README.md)."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, hydra_job, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    from cnnlab.checks.train import check_train

    plan = check_train(cfg, hydra_job(), check_place=False)  # every value, before anything is built or read
    from cnnlab.run import train  # torch and Lightning: after the checks, so that a mistake costs a second

    return train(plan).get("val/acc")


if __name__ == "__main__":
    set_root("train")
    main()
