"""The catalog of every command's option groups, read from the declarations and the registries: the Hydra schemas
(so that every declared option exists in the composed config, `model.mixup.share=0.5` needs no '+', and keeps its
default in one place, its declaration), `--help`, the README's option reference and the generated bad-value tests
all come from here. The YAML files of conf/ set only what a recipe, data set or kind changes."""

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cnnlab.checks.options import Options

ENTRY_POINTS = ("train", "eval", "search", "predict", "export", "prepare")


@dataclass(frozen=True)
class Group:
    """Options declared by one class, found under `path` ('' for a command's root options) of one command's config;
    `schema`: its Hydra ConfigStore entry, `title`: how the README heads it."""

    path: str
    options: type[Options]
    title: str
    schema: str | None = None
    kind: str | None = None  # the choice that brings these options (`data=folder`, `agent=evolution`)


def catalog(entry_point: str) -> list[Group]:
    """Every option group of `python src/<entry_point>.py`, in the order --help and the README show them."""
    from cnnlab.data.family import Family
    from cnnlab.data.options import DataOptions
    from cnnlab.run.trainer import TrainerOptions

    data = [Group("data.", DataOptions, "`data.*` (every data set)")]
    data += [Group("data.", family.Options, f"`data={name}` also takes", f"schema/data/{name}", f"data={name}")
             for name, family in Family.kinds().items()]
    trainer = [Group("trainer.", TrainerOptions, "`trainer.*` that cnnlab reads (any other Lightning `Trainer` "
                                                 "argument passes through)", "schema/trainer")]
    if entry_point == "train":
        from cnnlab.layers.arch import ArchOptions
        from cnnlab.model.options import ModelOptions
        from cnnlab.run.plans import RunOptions

        return [Group("", RunOptions, "root options", "schema/root/train"),
                Group("arch.", ArchOptions, "`arch.*`", "schema/arch"),
                Group("model.", ModelOptions, "`model.*`", "schema/model"), *data, *trainer, *_callbacks()]
    if entry_point == "eval":
        from cnnlab.run.plans import EvalOptions

        return [Group("", EvalOptions, "root options", "schema/root/eval"), *data, *trainer]
    if entry_point == "search":
        from cnnlab.model.options import ModelOptions
        from cnnlab.search.agents import Agent
        from cnnlab.search.plan import SearchOptions
        from cnnlab.search.pruners import Pruner
        from cnnlab.search.spaces import Space

        kinds = [Group("search.", kind.Options, f"`search.*` of a `kind: {name}` space", f"schema/search/{name}",
                       f"search kind {name}")
                 for name, kind in Space.kinds().items()]
        kinds += [Group(f"{registry.group}.", kind.Options, f"`{registry.group}={name}`",
                        f"schema/{registry.group}/{name}", f"{registry.group}={name}")
                  for registry in (Agent, Pruner) for name, kind in registry.kinds().items()]
        return [Group("", SearchOptions, "root options", "schema/root/search"), *kinds,
                Group("model.", ModelOptions, "`model.*` (every trial)", "schema/model"), *data, *trainer]
    if entry_point in ("predict", "export"):
        from cnnlab.deploy import ExportOptions, PredictOptions

        options = PredictOptions if entry_point == "predict" else ExportOptions
        return [Group("", options, "root options", f"schema/root/{entry_point}")]
    from cnnlab.prepare import PrepareOptions

    return [Group("", PrepareOptions, "root options", "schema/root/prepare"), *data]


def _callbacks() -> list[Group]:
    """The callbacks of conf/callbacks/ whose target declares its options (cnnlab's averaging callbacks; only cnnlab's
    own targets are imported: Lightning's would cost every command seconds)."""
    from pathlib import Path

    import yaml
    from hydra.utils import get_method

    from cnnlab.compose import CONFIG_DIR

    found = {}
    for path in sorted(Path(CONFIG_DIR, "callbacks").glob("*.yaml")):
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            own = isinstance(entry, dict) and entry["_target_"].startswith("cnnlab.")
            declared = getattr(get_method(entry["_target_"]), "Options", None) if own else None
            if isinstance(declared, type) and issubclass(declared, Options):
                found[name] = Group(f"callbacks.{name}.", declared, f"`callbacks={path.stem}`: `callbacks.{name}.*`",
                                    f"schema/callbacks/{name}")
    return list(found.values())


def rows(options: type[Options], prefix: str, values: Options | None = None,
         skip: tuple[str, ...] = ("task_name", "other", "family", "name", "kind")) -> Iterator[tuple[str, Any, str]]:
    """(key, default, meaning) of every option of a group, a group inside it flattened with the defaults its parent
    declares for it (`model.mixup.alpha` is 0.2, as ModelOptions sets it, not Mixing's own 1.0)."""
    for field in dataclasses.fields(options):
        declared = field.metadata.get("field")
        if declared is None or field.name in skip:
            continue
        interpolated = isinstance(declared.default, str) and "${" in declared.default  # resolved at compose time
        default = getattr(values, field.name) if values is not None else None if declared.required else \
            declared.default if interpolated else declared.check(declared.default)
        inner = getattr(declared.check, "group", None)
        if inner is not None:
            yield from rows(inner, f"{prefix}{field.name}.", default, skip)
        else:
            yield f"{prefix}{field.name}", "(required)" if declared.required and values is None else default, \
                declared.help


def own_rows(group: Group) -> Iterator[tuple[str, Any, str]]:
    """A data family's rows beyond every data set's (its own options)."""
    from cnnlab.data.options import DataOptions

    common = {f.name for f in dataclasses.fields(DataOptions)}
    is_family = group.options is not DataOptions and issubclass(group.options, DataOptions)
    skip = ("task_name", "other", "family", "name", "kind", *(common if is_family else ()))
    return rows(group.options, group.path, skip=skip)


def register(entry_point: str) -> None:
    """The schemas of one command (and of train.py, whose config a recipe search composes for its trials)."""
    from hydra.core.config_store import ConfigStore

    from cnnlab.run.trainer import trainer_schema

    store = ConfigStore.instance()
    for group in {g.schema: g for e in {entry_point, "train"} for g in catalog(e) if g.schema}.values():
        folder, _, name = group.schema.rpartition("/")
        if group.schema == "schema/trainer":
            node = trainer_schema()
        elif folder in ("schema/root", "schema/callbacks", "schema/search"):  # plain values: merged beside other
            # keys, and a search dimension may turn from a range into a list (`~search.lr +search.lr=[0.1]`)
            node = group.options.defaults()
        else:
            node = group.options.schema()
        store.store(group=folder, name=name, node=node)
