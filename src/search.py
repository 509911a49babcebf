"""Learn a layer list with Optuna: `python src/search.py search=cnn_small data=mnist n_trials=50` (see README.md)."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="search")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from cnnlab.checks.search import check_search

    plan = check_search(cfg)
    from cnnlab.search import run_search

    run_search(plan)


if __name__ == "__main__":
    set_root("search")
    main()
