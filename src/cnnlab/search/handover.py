"""The hand-over: a trial as an experiment file, `<study>/experiment/trial_<n>.yaml` (the winner also as
`best_experiment.yaml`), with its layer list and every value it trained with that differs from train.py's defaults
for its config groups, and the one command that trains it: `python src/train.py --config-dir <study>
experiment=best_experiment`. At the trial's own length and seed (and torch thread count) it gives the trial's best
validation accuracy (`val/best_acc` in results.json); with `trainer.max_epochs=...` it trains the winner at full
length. Copy the file to conf/experiment/ to ship it."""

import re
from pathlib import Path
from typing import Any

import yaml

TRAIN_GROUPS = ("arch", "data", "model", "optim", "scheduler", "trainer", "callbacks")
TRIAL_ONLY = {"trainer": ("enable_checkpointing", "enable_progress_bar", "default_root_dir")}  # how a trial runs
# a trial as train.py overrides: no test split, loggers, checkpoints or progress bar
QUIET = ("test=false", "~logger", "trainer.enable_checkpointing=false", "trainer.enable_progress_bar=false")


def differences(value: Any, reference: Any) -> Any:
    """What of `value` differs from `reference` (mappings compared key by key; anything else as a whole)."""
    if isinstance(value, dict) and isinstance(reference, dict):
        out = {}
        for key, item in value.items():
            if key not in reference:
                out[key] = item
            elif item != reference[key]:
                out[key] = differences(item, reference[key])
        return out
    return value


def following(raw: Any, resolved: Any, config: dict[str, Any]) -> Any:
    """The defaults `resolved` with each value that only follows another (`${trainer.max_epochs}`) taken from the
    trial's `config`: a follower is not written, so that it still follows (a scheduler's T_max pinned at the trial's
    epochs would restart its cosine when the winner trains longer)."""
    if isinstance(resolved, dict):
        raw = raw if isinstance(raw, dict) else {}
        return {key: following(raw.get(key), item, config) for key, item in resolved.items()}
    match = re.fullmatch(r"\$\{([\w.]+)\}", raw) if isinstance(raw, str) else None
    if match is None:
        return resolved
    value: Any = config
    for key in match[1].split("."):
        if not isinstance(value, dict) or key not in value:
            return resolved
        value = value[key]
    return value


def experiment(config: dict[str, Any], choices: dict[str, str]) -> dict[str, Any]:
    """The experiment that composes to `config` (a trial's resolved train config) on top of train.py's defaults."""
    from cnnlab.compose import compose, plain

    groups = {g: c for g, c in choices.items() if g in TRAIN_GROUPS and g != "arch" and c is not None}
    defaults = [f"{g}={c}" for g, c in groups.items()]
    reference = following(compose("train", *defaults, raw=True), plain(compose("train", *defaults)), config)
    body: dict[str, Any] = {"defaults": [{f"override /{g}": c} for g, c in groups.items()]}
    for section in TRAIN_GROUPS:
        value = config.get(section)
        if section == "arch":  # the list whole (another default list is not merged into it)
            body["arch"] = {k: value[k] for k in ("name", "layers", "width", "depth") if k in value}
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in TRIAL_ONLY.get(section, ())}
        if section == "scheduler" and value is None:
            if reference.get("scheduler") is not None:
                body["defaults"].append({"override /scheduler": None})
            continue
        changed = differences(value, reference.get(section))
        if changed not in ({}, None):
            body[section] = changed
    body["seed"] = config["seed"]
    return body


def write(out_dir: Path, config: dict[str, Any], choices: dict[str, str], header: str, name: str) -> str:
    """The experiment file `experiment/<name>.yaml`, and the command that trains it."""
    folder = out_dir / "experiment"
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(experiment(config, choices), sort_keys=False, default_flow_style=None, width=120)
    (folder / f"{name}.yaml").write_text(f"# @package _global_\n{header}{text}")
    return f"python src/train.py --config-dir {out_dir} experiment={name}"


def write_trial(search, trial, header: str = "", name: str | None = None) -> str | None:
    """Trial `trial`'s hand-over (its trials/<n>/config.yaml as an experiment), and its command; None without one."""
    import torch

    config_file = search.out_dir / "trials" / str(trial.number) / "config.yaml"
    if not config_file.is_file():
        return None
    config = yaml.safe_load(config_file.read_text())
    length = f"trainer.max_epochs={config['trainer']['max_epochs']}"
    if config["trainer"].get("max_steps", -1) != -1:
        length += f" trainer.max_steps={config['trainer']['max_steps']}"
    header += (f"# Trial {trial.number} of study {search.options.study_name}, searched by: {search.plan.command}\n"
               f"# At the trial's length ({length}, seed {config['seed']}, {torch.get_num_threads()} torch threads) "
               "this gives its best validation accuracy (val/best_acc);\n# train it longer with trainer.max_epochs=N "
               "trainer.max_steps=-1.\n")
    choices = trial.user_attrs.get("choices") or search.plan.choices
    return write(search.out_dir, config, choices, header, name or f"trial_{trial.number}")
