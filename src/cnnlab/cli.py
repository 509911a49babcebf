"""What the entry points share: the repository root for configs, and errors shown as one short message."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback

from cnnlab.checks.schemas import register
from cnnlab.errors import CnnlabError

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = str(ROOT / "conf")
register()  # the option groups' schemas, before Hydra composes anything


def set_root(config_name: str) -> None:
    """Before Hydra parses the command line: run directories and data default to the repository wherever the command
    is started from; the config files parse (a broken one is one sentence, not Hydra's traceback); `group=null` means
    no entry of that group, as `~group` does (Hydra stops on it with a ValueError); `--help` is the entry point's
    own; an unknown name is one sentence (`cnnlab.overrides`)."""
    from cnnlab import overrides

    os.environ.setdefault("CNNLAB_ROOT", str(ROOT))
    for folder in [Path(CONFIG_DIR), *search_path(sys.argv[1:])]:
        check_config_files(folder)
    sys.argv[1:] = [null_group(arg) for arg in sys.argv[1:]]
    if {"--help", "-h"} & set(sys.argv[1:]):
        overrides.show_help(config_name)
    if not {"--cfg", "-c", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"} & set(sys.argv[1:]):
        problem = overrides.check_overrides(config_name, sys.argv[1:])
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)


def search_path(args: list[str]) -> list[Path]:
    """The folders a `hydra.searchpath=[file://...]` override adds (Hydra reads their configs as it reads conf/)."""
    folders = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            for entry in value.strip("[]").split(","):
                entry = entry.strip().strip("'\"")
                if entry.startswith("file://") and Path(entry.removeprefix("file://")).is_dir():
                    folders.append(Path(entry.removeprefix("file://")))
    return folders


def check_config_files(folder: Path) -> None:
    import yaml

    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            print(f"error: {path.relative_to(folder.parent)} is not valid YAML{line} ({problem}); fix the file or "
                  "remove it.", file=sys.stderr)
            sys.exit(2)


def null_group(arg: str) -> str:
    """`logger=null` (or none) -> `~logger` for a config group of conf/; anything else as typed. A group with an
    entry of that name (`pruner=none`) takes the entry: removed, the group's options given beside it
    (`pruner.reduction_factor=2`) would rebuild it from its defaults (the median pruner)."""
    key, sep, value = arg.partition("=")
    group = Path(CONFIG_DIR) / key
    if (sep and value.lower() in ("null", "none") and key.isidentifier() and group.is_dir()
            and not (group / f"{value}.yaml").is_file()):
        return f"~{key}"
    return arg


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hydra_job():
    """Where this run sits in Hydra's launch (a sweep job, or a single run), for the plan."""
    from hydra.core.hydra_config import HydraConfig

    from cnnlab.checks.train import Job

    hydra_cfg = HydraConfig.get()
    overrides = tuple(hydra_cfg.overrides.task)
    if not in_multirun():
        return Job(overrides=overrides)
    return Job(Path(hydra_cfg.sweep.dir), hydra_cfg.job.override_dirname or f"job{hydra_cfg.job.num}", overrides)


def _job_failed(err: Exception) -> None:
    """A failed sweep job: its error goes to error.txt in its folder, and the sweep goes on with the others
    (Hydra would stop at the end of the batch and skip the summary)."""
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    own = own_message(err)
    message = (own or f"{type(err).__name__}: {err}").splitlines()[0]
    trace = "" if own is not None else "\n" + traceback.format_exc()
    (out_dir / "error.txt").write_text(message + "\n" + trace)
    log_to_file(f"error: {message}{trace}")
    print(f"error in job {out_dir.name}: {message}", file=sys.stderr)
    return None


def log_to_file(text: str) -> None:
    """Into the run's train.log only (Hydra's file handler): the console has had its own line."""
    import logging

    record = logging.LogRecord("cnnlab", logging.ERROR, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def record_stop(message: str, status: str = "failed") -> None:
    """A run that ends without its results says why: in its train.log, and in a results.json that says `status`
    (never over one a finished run wrote)."""
    import json

    from hydra.core.hydra_config import HydraConfig

    log_to_file(message)
    if not HydraConfig.initialized():
        return
    out = Path(HydraConfig.get().runtime.output_dir)
    if out.is_dir() and not (out / "results.json").exists():
        (out / "results.json").write_text(json.dumps({"status": status, "error": message}, indent=2) + "\n")


def own_message(err: BaseException) -> str | None:
    """cnnlab's sentence for an error: its own errors' message, also when a data loader worker raised it (PyTorch then
    re-raises it with the worker's traceback in the message); None for anything else (a bug: shown in full)."""
    text = str(err)
    if "Original Traceback" in text:  # 'Caught DataError in DataLoader worker process 0. Original Traceback ...'
        last = text.strip().splitlines()[-1]
        name, _, rest = last.partition(": ")
        if name.rsplit(".", 1)[-1] in ("DataError", "ConfigError", "ArchError", "CnnlabError", "OptionError"):
            return rest
    return text if isinstance(err, CnnlabError) else None


def friendly_errors(task: Callable) -> Callable:
    """Own errors end the run with `error: ...` and exit code 2; HYDRA_FULL_ERROR=1 shows the traceback."""

    @functools.wraps(task)
    def run(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as err:
            if in_multirun():
                return _job_failed(err)
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                record_stop(traceback.format_exc())
                raise
            message = own_message(err)
            record_stop(f"error: {message}" if message else traceback.format_exc())
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return run


class OutputDirCheck(Callback):
    """Hydra callback: the run (or sweep) folder must be creatable before Hydra makes it, or the user gets Hydra's
    traceback instead of a sentence; and a run folder that holds an earlier run is refused before Hydra writes its
    .hydra/ into it (a run that continues it, with its own checkpoint as ckpt_path, may)."""

    def _check(self, folder: str, key: str) -> None:
        from cnnlab.checks.places import writable

        try:
            writable(Path(folder), key)
        except CnnlabError as err:
            reason = str(err).partition("cannot be written")[2].split(";")[0].strip(" :") or str(err)
            print(f"error: cannot write the output folder {folder} ({reason}); choose a writable one with "
                  f"{key}=<folder>, or move all runs with CNNLAB_ROOT=<folder>.", file=sys.stderr)
            sys.exit(2)

    def _folder(self, config, key: str) -> str | None:
        from omegaconf import OmegaConf
        from omegaconf.errors import InterpolationResolutionError

        try:
            return OmegaConf.select(config, key, throw_on_resolution_failure=True)
        except InterpolationResolutionError:  # needs Hydra's runtime values: Hydra reports any problem itself
            return None

    def on_run_start(self, config, **kwargs) -> None:
        folder = self._folder(config, "hydra.run.dir")
        if folder:
            self._earlier_run(config, Path(folder))
            self._check(folder, "hydra.run.dir")

    def _earlier_run(self, config, folder: Path) -> None:
        from cnnlab.checks.train import refuse_earlier_run

        if config.get("task_name") not in ("train", "eval"):
            return  # search: the study's folder is meant to be continued; predict, export, prepare: new files only
        ckpt = config.get("ckpt_path")
        try:
            refuse_earlier_run(folder, Path(ckpt) if ckpt and ckpt != "???" else None)
        except CnnlabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_multirun_start(self, config, **kwargs) -> None:
        folder = self._folder(config, "hydra.sweep.dir")
        if folder:
            self._check(folder, "hydra.sweep.dir")
        launcher = config.hydra.get("launcher") or {}
        n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0
                                   or n_jobs < -1):
            print(f"error: hydra.launcher.n_jobs = {n_jobs!r}; expected the number of jobs side by side, a positive "
                  "integer, or -1 for one per core.", file=sys.stderr)
            sys.exit(2)
