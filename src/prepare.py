"""Write a data set into shards once, to stream it: `python src/prepare.py data=folder data.root=PATH out=SHARDS`,
then `python src/train.py data=stream data.root=SHARDS` (see README.md)."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from cnnlab.checks.prepare import check_prepare

    plan = check_prepare(cfg)
    from cnnlab.prepare import prepare

    prepare(plan)


if __name__ == "__main__":
    set_root("prepare")
    main()
