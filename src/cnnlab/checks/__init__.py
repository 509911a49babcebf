"""The front door: every value a user can set, checked once into a frozen plan before anything is built or read.

One vocabulary (`fields`: checkers that say what is allowed; `options`: option groups declared once, with their
defaults, checks and meaning), one plan per entry point: `check_train`, `check_eval`, `check_search`,
`check_predict`, `check_export`, `check_prepare`. Code below the front door takes plans, never a config. From
Python (tests, notebooks, benchmarks): `plan = train_plan("arch=small", "data=mnist", out="outputs/mine")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def compose(config_name: str, *overrides: str) -> Any:
    """The config an entry point would compose for these overrides (conf/<config_name>.yaml), without running it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cnnlab.cli import CONFIG_DIR

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose(config_name, list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # so that ${hydra:runtime.choices...} resolve, as in a real run
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train_plan(*overrides: str, out: str | Path):
    """`python src/train.py <overrides> hydra.run.dir=<out>`'s plan, checked as the command line checks it."""
    from cnnlab.checks.train import check_train

    return check_train(compose("train", *overrides, f"paths.output_dir={out}"))
