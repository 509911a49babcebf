"""The option groups as Hydra schemas (ConfigStore), so that every declared option exists in the composed config
(`model.mixup.share=0.5`, `trainer.limit_train_batches=20` need no '+') and keeps its default in one place: its
declaration in `checks/`. The YAML files of conf/ set what a recipe or data set changes."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from cnnlab.checks.arch import ArchOptions
from cnnlab.checks.data import FAMILY_OPTIONS
from cnnlab.checks.model import ModelOptions
from cnnlab.checks.trainer import trainer_schema


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="schema", name="arch", node=ArchOptions.schema())
    store.store(group="schema", name="model", node=ModelOptions.schema())
    store.store(group="schema", name="trainer", node=trainer_schema())
    for family, options in FAMILY_OPTIONS.items():
        store.store(group="schema/data", name=family, node=options.schema())
