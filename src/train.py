"""Train a layer-list CNN: `python src/train.py arch=seed data=digits optim=adam` (see README.md)."""

import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float | None:
    from cnnlab.run import train  # after Hydra has parsed the command line, so `--help` stays fast

    metrics = train(cfg)
    return metrics.get("val/acc")


if __name__ == "__main__":
    set_root()
    main()
