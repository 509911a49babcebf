"""The one compose: Hydra composes a command's configuration once (on the command line, in tests, for a recipe
search's trials), and its refusals are said here as one sentence with the closest valid names, never Hydra's advice
to add a '+' to a name that exists nowhere."""

from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError, suggest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(ROOT / "conf")


def compose(config_name: str, *overrides: str, raw: bool = False, choices: dict[str, str] | None = None) -> Any:
    """conf/<config_name>.yaml with these overrides, every interpolation resolved (`raw`: as written, a plain dict),
    without running the command; Hydra's global state is left as it was (a search composes its trials from inside
    a running app). `choices`, when given, receives the config groups chosen. A refusal is one OptionError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf import OmegaConf, open_dict

    backup, before = get_gh_backup(), HydraConfig.instance().cfg
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
            cfg = hydra_compose(config_name, [null_group(o) for o in overrides], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.choices...} resolve as in a real run
        if choices is not None:
            choices.update({k: v for k, v in cfg.hydra.runtime.choices.items()
                            if v is not None and "/" not in k and not k.startswith("hydra")})
        with open_dict(cfg):
            del cfg["hydra"]
        return OmegaConf.to_container(cfg, resolve=False) if raw else OmegaConf.create(plain(cfg))
    except Exception as err:  # noqa: BLE001 - whatever Hydra or OmegaConf refuse, said as one sentence
        if isinstance(err, OptionError):
            raise
        raise OptionError(reworded(err, list(overrides))) from None
    finally:
        restore_gh_from_backup(backup)
        HydraConfig.instance().cfg = before


def entries(group: str) -> list[str]:
    """The names a config group offers (conf/<group>/*.yaml), sorted; none for what is not a group."""
    return sorted(p.stem for p in Path(CONFIG_DIR, group).glob("*.yaml")) if group.isidentifier() else []


def null_group(arg: str) -> str:
    """`logger=null` (or none) -> `~logger` for a config group of conf/; anything else as typed. A group with an
    entry of that name (`pruner=none`) takes the entry."""
    key, sep, value = arg.partition("=")
    group = Path(CONFIG_DIR) / key
    if (sep and value.lower() in ("null", "none") and key.isidentifier() and group.is_dir()
            and not (group / f"{value}.yaml").is_file()):
        return f"~{key}"
    return arg


def plain(cfg: Any) -> dict[str, Any]:
    """The composed config as plain data, every interpolation resolved (a resolver's error is one sentence)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as err:
        raise OptionError(f"the config cannot be resolved: {str(err).splitlines()[0]}") from None


def reworded(err: BaseException, overrides: list[str] = ()) -> str:
    """Hydra's or OmegaConf's refusal of a command line (`overrides`) or config file, as one sentence."""
    from hydra.errors import MissingConfigException

    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0]
    if first.startswith("Config group override must be a string or a list"):  # debug=true
        for key, _, value in (o.lstrip("+~").partition("=") for o in overrides if "=" in o):
            names = entries(key)
            if names and value not in names:
                return (f"{key}={value}: {key} is a config group, not a switch; choose one of {', '.join(names)} "
                        f"(conf/{key}/), or {key}=null for none.")
    if type(err).__name__ == "OverrideParseException":  # storage=postgresql://...?host=/tmp
        return _unparsed(overrides, first)
    if isinstance(err, MissingConfigException) or "Could not find '" in first:
        return _missing_entry(text)
    if first.startswith("Could not override '"):
        given = text.splitlines()[-1].split("use +", 1)[-1]
        return unknown_option(first.split("'")[1], err.__cause__, given)
    if first.startswith("Error merging override "):  # search.lr=[0.1] where search.lr is a range
        given = first.removeprefix("Error merging override ")
        key = given.split("=")[0].lstrip("+~")
        return (f"{given}: {key} holds a value of another kind (a mapping, a list or a number), which an assignment "
                f"cannot replace; delete it first: ~{key} +{given}")
    if first.startswith("Could not append to config. An item is already at '"):
        key = first.split("'")[1]
        return f"{key} exists already: set it without the '+', e.g. {key}=..."
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(err, HydraException | OmegaConfBaseException) or "yaml" in type(err).__module__:
        broken = broken_file(overrides)  # an unreadable file on the search path is what Hydra stumbled on
        if broken:
            return broken
    return first


def _unparsed(overrides: list[str], problem: str) -> str:
    """Hydra's grammar refused an override: which one, and how to quote its value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except Exception:  # noqa: BLE001 - the grammar's refusal, whatever its type
            key, _, value = override.partition("=")
            if value.startswith(("[", "{")):
                return (f"{override}: Hydra cannot read this value ({problem}); a list is [a,b] and a mapping "
                        "{k: v}, their brackets closed.")
            return (f"{override}: Hydra cannot read this value ({problem}); a value holding '=', ',', spaces or "
                    f"brackets goes in Hydra's quotes, inside the shell's: \"{key}='{value}'\"")
    return problem


def broken_file(overrides: list[str] = ()) -> str | None:
    """The first config file (conf/, or a folder the command line adds with hydra.searchpath or --config-dir) that
    is not valid YAML, or a group's file that is not a mapping of options; None if there is none."""
    import re

    import yaml

    folders = [Path(CONFIG_DIR)] + [Path(p) for o in overrides for p in re.findall(r"file://([^,\]'\"]+)", o)]
    folders += [Path(b) for a, b in zip(overrides, overrides[1:]) if a in ("--config-dir", "-cd")]
    named = {o.partition("=")[2] for o in overrides}  # a file the command line chooses is looked at first
    for folder in folders:
        for path in sorted(folder.rglob("*.yaml"), key=lambda p: (p.stem not in named, p)):
            try:
                data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except (yaml.YAMLError, UnicodeDecodeError) as err:
                mark = getattr(err, "problem_mark", None)
                at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
                return f"{path} is not valid YAML{at} ({getattr(err, 'problem', None) or err}); fix it or remove it."
            if path.parent != folder and data is not None and not isinstance(data, dict):
                return (f"{path} holds a YAML {type(data).__name__}, not a mapping of options (key: value lines); "
                        "fix it or remove it.")
    return None


def _missing_entry(text: str) -> str:
    """Hydra's 'Could not find' with its list of options, as one sentence."""
    first = text.splitlines()[0]  # In 'train': Could not find 'arch/nope'
    if "'schema/" in first:  # a caller composed before cnnlab.schemas.register (the command line and train_plan do)
        return f"{first}: the option schemas are not registered; call cnnlab.schemas.register('<command>') first."
    wanted = first.split("Could not find '")[-1].rstrip("'")
    group, _, name = wanted.rpartition("/")
    options = [line.strip() for line in text.splitlines() if line.startswith("\t") and "provider=" not in line]
    if not group:
        return first
    return (f"{group}={name}: there is no conf/{group}/{name}.yaml; choose one of {', '.join(options)}."
            + suggest(name, options))


def unknown_option(key: str, cause: Any, given: str) -> str:
    """`key` names nothing in the composed config. OmegaConf's error (`cause`) says how far the name was found
    (`full_key`) and in which node it stopped (`parent_node`): say what that node takes, how to add a layer field or
    an argument its config does not write, or which group must be chosen first."""
    import re

    from omegaconf import DictConfig

    missing = re.sub(r"\[(\d+)\]", r".\1", getattr(cause, "full_key", None) or key)
    parent_key, _, name = missing.rpartition(".")
    parent = getattr(cause, "parent_node", None)
    if not isinstance(parent, DictConfig) or parent._is_none() or not parent:
        names = entries(parent_key)
        if names:
            return (f"{key}: no {parent_key} is chosen ({parent_key}=null); choose one first, e.g. "
                    f"{parent_key}={names[0]} (conf/{parent_key}/: {', '.join(names)}).")
        return f"{key}: {parent_key or 'the config'} is not a group of options."
    if parent_key.startswith("arch.layers.") and "type" in parent:
        return _layer_field(key, name, str(parent.get("type")), given)
    if "_target_" in parent:
        return _argument(key, name, parent, given)
    options = sorted(str(k) for k in parent if not str(k).startswith("_") and str(k) != "hydra")
    if parent_key and (Path(CONFIG_DIR) / parent_key / f"{name}.yaml").is_file():  # callbacks.ema.x, no callbacks=ema
        return f"{key}: {missing} comes with {parent_key}={name}; choose it first ({parent_key}={name} {key}=...)."
    where = f"the {parent_key} options" if parent_key else "this command's options"
    unknown = key if missing == key else f"{key}: {missing}"
    return f"{unknown} is not among {where}." + suggest(name, options) + f" They are: {_few(options)}."


def _few(names: list[str], most: int = 12) -> str:
    """A list of names short enough for one line (README.md's option reference has them all)."""
    shown = ", ".join(names[:most])
    return shown + (f", ... ({len(names)} in all; README.md, 'Option reference')" if len(names) > most else "")


def _argument(key: str, name: str, node: Any, given: str) -> str:
    """An argument of an optimizer, schedule, callback or logger (a `_target_` config)."""
    import inspect

    from hydra.utils import get_method

    try:
        if str(node["_target_"]).endswith(".Trainer"):  # its schema lists them all; importing Lightning takes seconds
            names = [str(k) for k in node if not str(k).startswith("_")]
        else:
            names = [n for n in inspect.signature(get_method(node["_target_"])).parameters
                     if n not in ("self", "params", "optimizer", "kwargs", "args")]
    except Exception:  # noqa: BLE001 - a target that cannot be imported is the plan's to say
        names = [str(k) for k in node if not str(k).startswith("_")]
    if name in names:
        return f"{key}: an argument of {node['_target_']} that its config does not set; set it with +{given}"
    return (f"{key} is not an argument of {node['_target_']}." + suggest(name, names)
            + f" Its arguments: {_few(names)}.")


def _layer_field(key: str, name: str, kind: str, given: str) -> str:
    from cnnlab.layers.spec import layer_types

    fields = list(layer_types().get(kind).fields) if kind in layer_types() else []
    if name in fields:
        return f"{key}: the list does not write this field of its {kind} layer; add it with +{given}"
    return f"{key}: layers of type {kind} have no field {name!r}; fields: {', '.join(fields)}." + suggest(name, fields)
