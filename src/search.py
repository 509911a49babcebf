"""Learn a layer list with Optuna: `python src/search.py search=cnn_small data=mnist n_trials=50` (see README.md)."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
from cnnlab.cli import run


def main(cfg) -> None:
    from cnnlab.search.plan import check_search

    plan = check_search(cfg)
    from cnnlab.search.study import run_search

    run_search(plan)


if __name__ == "__main__":
    run("search", main)
