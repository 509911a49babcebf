"""The option groups as Hydra schemas (ConfigStore), so that every declared option exists in the composed config
(`model.mixup.share=0.5`, `trainer.limit_train_batches=20` need no '+') and keeps its default in one place: its
declaration (`checks/`, a data family's module). The YAML files of conf/ set what a recipe or data set changes."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from cnnlab.checks.arch import ArchOptions
from cnnlab.checks.model import ModelOptions
from cnnlab.checks.trainer import trainer_schema


def register() -> None:
    from cnnlab.checks.deploy import ExportOptions, PredictOptions
    from cnnlab.checks.eval import EvalOptions
    from cnnlab.checks.prepare import PrepareOptions
    from cnnlab.checks.search import AGENTS, PrunerOptions, SearchOptions
    from cnnlab.checks.train import RunOptions

    store = ConfigStore.instance()
    roots = {"train": RunOptions, "eval": EvalOptions, "predict": PredictOptions, "export": ExportOptions,
             "prepare": PrepareOptions, "search": SearchOptions}
    store.store(group="schema", name="pruner", node=PrunerOptions.schema())
    for name, options in AGENTS.items():
        store.store(group="schema/agent", name=name, node=options.schema())
    for entry_point, options in roots.items():  # each entry point's root options (seed, ckpt_path, n_trials, ...)
        store.store(group="schema/root", name=entry_point, node=options.defaults())
    store.store(group="schema", name="arch", node=ArchOptions.schema())
    store.store(group="schema", name="model", node=ModelOptions.schema())
    store.store(group="schema", name="trainer", node=trainer_schema())
    from cnnlab.data.family import families

    for name, family in families().items():
        store.store(group="schema/data", name=name, node=family.Options.schema())
