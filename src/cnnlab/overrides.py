"""The command line before Hydra runs: the overrides composed once so that an unknown name (an option or a group
entry) is one `error:` line with the closest valid names, never Hydra's advice to add `+`; and `--help` from the
declarations: the groups and options of that entry point, one line each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import suggest

VALUED_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun")


def first_values(args: list[str]) -> list[str]:
    """The overrides as one run would take them: a sweep (`a=1,2`, `range(...)`) by its first value; flags left out,
    `--config-dir DIR` as the search path entry Hydra makes of it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    plain, skip = [], False
    for k, arg in enumerate(args):
        if skip:
            skip = False
            continue
        flag, _, value = arg.partition("=")
        if flag in VALUED_FLAGS:
            value = value or (args[k + 1] if k + 1 < len(args) else "")
            skip = "=" not in arg
            if flag in ("--config-dir", "-cd") and value:
                plain.append(f"hydra.searchpath=[file://{Path(value).resolve()}]")
        elif not arg.startswith("-"):
            plain.append(arg)
    out = []
    for override in OverridesParser.create().parse_overrides(plain):
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()), "")
            out.append(f"{override.get_key_element()}={value}")
        else:
            out.append(override.input_line)
    return out


def compose(config_name: str, overrides: list[str]) -> Any:
    """The config for these overrides; Hydra's global state as it was before (a search checks its recipe knobs from
    inside a running Hydra app)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    from cnnlab.cli import CONFIG_DIR

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            return hydra_compose(config_name, overrides, return_hydra_config=True)
    finally:
        restore_gh_from_backup(backup)


def check_overrides(config_name: str, args: list[str]) -> str | None:
    """None when the overrides compose; else the sentence that says which name is unknown and what exists."""
    from hydra.errors import HydraException, MissingConfigException

    try:
        overrides = first_values(args)
    except HydraException as err:
        return f"the command line cannot be read: {str(err).splitlines()[0]}"
    try:
        compose(config_name, overrides)
    except MissingConfigException as err:
        return _missing_entry(str(err))
    except HydraException as err:
        text = str(err)
        if text.startswith("Could not override '"):
            key = text.split("'")[1]
            rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
            return unknown_option(config_name, key, rest, next(o for o in overrides if o.startswith(key + "=")))
        if text.startswith("Could not append to config. An item is already at '"):
            key = text.split("'")[1]
            return f"{key} exists already: set it without the '+', e.g. {key}=..."
        return text.splitlines()[0]
    return None


def _missing_entry(text: str) -> str:
    """Hydra's 'Could not find' with its list of options, as one sentence."""
    first = text.splitlines()[0]  # In 'train': Could not find 'arch/nope'
    wanted = first.split("Could not find '")[-1].rstrip("'")
    group, _, name = wanted.rpartition("/")
    options = [line.strip() for line in text.splitlines() if line.startswith("\t") and "provider=" not in line]
    if not group:
        return first
    return (f"{group}={name}: there is no conf/{group}/{name}.yaml; choose one of {', '.join(options)}."
            + suggest(name, options))


def unknown_option(config_name: str, key: str, others: list[str], given: str) -> str:
    """`key` names nothing in the composed config: say what its parent takes, or how to add a layer field."""
    from omegaconf import DictConfig, ListConfig

    config = compose(config_name, others)
    parent, _, name = key.rpartition(".")
    node = config
    for part in parent.split(".") if parent else []:
        if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, DictConfig) and part in node:
            node = node[part]
        else:
            groups = sorted(k for k, v in config.items() if isinstance(v, DictConfig) and k != "hydra")
            return (f"{key}: {config_name}.py has no {parent}; its option groups: {', '.join(groups)}."
                    + suggest(part, groups))
    if node is None and "." not in parent:
        from cnnlab.cli import CONFIG_DIR

        names = sorted(p.stem for p in (Path(CONFIG_DIR) / parent).glob("*.yaml"))
        return (f"{key}: no {parent} is chosen ({parent}=null); choose one first, e.g. {parent}={names[0]} "
                f"(conf/{parent}/: {', '.join(names)}).") if names else f"{key}: {parent} is null."
    if not isinstance(node, DictConfig):
        return f"{key}: {parent} is a value ({node!r}), not a group of options."
    if parent.startswith("arch.layers.") and "type" in node:
        return _layer_field(key, name, str(node.get("type")), given)
    if "_target_" in node:
        return _argument(key, name, node, given)
    where = parent or f"{config_name}.py's root"
    options = sorted(str(k) for k in node if not str(k).startswith("_") and str(k) != "hydra")
    return (f"{key} is not an option of {where}; options: {', '.join(options)}." + suggest(name, options)
            + " (See README.md, 'Option reference'.)")


def _argument(key: str, name: str, node: Any, given: str) -> str:
    """An argument of an optimizer, schedule, callback or logger (a `_target_` config)."""
    import inspect

    from hydra.utils import get_method

    from cnnlab.checks.trainer import TARGETS, lightning_arguments

    try:
        if node["_target_"] in TARGETS:  # read from Lightning's source: importing it takes seconds
            names = list(lightning_arguments())
        else:
            names = [n for n in inspect.signature(get_method(node["_target_"])).parameters
                     if n not in ("self", "params", "optimizer", "kwargs", "args")]
    except Exception:  # noqa: BLE001 - a target that cannot be imported is the plan's to say
        names = [str(k) for k in node if not str(k).startswith("_")]
    if name in names:
        return f"{key}: an argument of {node['_target_']} that its config does not set; set it with +{given}"
    return (f"{key} is not an argument of {node['_target_']}; its arguments: {', '.join(names)}."
            + suggest(name, names))


def _layer_field(key: str, name: str, kind: str, given: str) -> str:
    from cnnlab.layers.spec import layer_types

    fields = list(layer_types().get(kind).fields) if kind in layer_types() else []
    if name in fields:
        return f"{key}: the list does not write this field of its {kind} layer; add it with +{given}"
    return f"{key}: layers of type {kind} have no field {name!r}; fields: {', '.join(fields)}." + suggest(name, fields)


# --- --help -------------------------------------------------------------------------------------------------------
def groups_of(config_name: str) -> dict[str, str]:
    """The entry point's config groups (from its root config's defaults list) and the entry chosen by default."""
    import yaml

    from cnnlab.cli import CONFIG_DIR

    root = yaml.safe_load((Path(CONFIG_DIR) / f"{config_name}.yaml").read_text())
    out = {}
    for entry in root.get("defaults", []):
        if isinstance(entry, dict):
            (group, choice), = entry.items()
            group = group.removeprefix("override ").split("@")[0]
            if not group.startswith(("schema", "hydra")):
                out[group] = choice
    return out


def help_text(config_name: str) -> str:
    from cnnlab.checks.reference import option_lines
    from cnnlab.cli import CONFIG_DIR

    lines = [f"python src/{config_name}.py [group=name ...] [option=value ...]", "",
             "groups (conf/<group>/; the default first):"]
    for group, chosen in groups_of(config_name).items():
        names = sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
        names = ([chosen] if chosen in names else []) + [n for n in names if n != chosen]
        none = "" if chosen in names else "  (none by default)"
        lines.append(f"  {group:10s} {', '.join(names) or '(none)'}{none}")
    lines += ["", "options (name default: meaning):", *option_lines(config_name), "",
              "Every Lightning Trainer argument is trainer.<name>=...; all options: README.md, 'Option reference'."]
    return "\n".join(lines)


def show_help(config_name: str) -> None:
    print(help_text(config_name))
    sys.exit(0)
