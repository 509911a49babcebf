"""Evaluate a checkpoint on its test split: `python src/eval.py ckpt_path=<run>/checkpoints/best.ckpt`."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, hydra_job, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from cnnlab.checks.eval import check_eval

    plan = check_eval(cfg, hydra_job(), check_place=False)
    from cnnlab.run import evaluate

    evaluate(plan)


if __name__ == "__main__":
    set_root("eval")
    main()
