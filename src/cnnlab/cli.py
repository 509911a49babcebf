"""The command line of every entry point (`src/<command>.py` calls `run`): Hydra composes the configuration once,
its refusals and cnnlab's own errors end the command with one `error:` line and exit code 2 (HYDRA_FULL_ERROR=1 shows
the traceback), `--help` comes from the declarations, `group=null` means no entry of that group."""

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback

from cnnlab.checks.errors import CnnlabError
from cnnlab.compose import CONFIG_DIR, ROOT, compose, null_group, reworded
from cnnlab.run.stops import log_to_file, record_stop


def train_plan(*overrides: str, out: str | Path):
    """`python src/train.py <overrides> hydra.run.dir=<out>`'s plan, checked as the command line checks it (for
    notebooks, tests and benchmarks)."""
    from cnnlab.run.plans import check_train
    from cnnlab.schemas import register

    register("train")  # as run() does: the config files' defaults name these schemas
    return check_train(compose("train", *overrides, f"paths.output_dir={out}"))


FLAGS = {"--cfg", "-c", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def run(config_name: str, task: Callable) -> None:
    """Hydra's app for conf/<config_name>.yaml around `task`. Hydra is asked to raise what it refuses (it would print
    a traceback or its own text and exit 1), so that it is said here in one sentence; a bug in the task keeps its
    traceback."""
    import hydra

    from cnnlab.schemas import register

    os.environ.setdefault("CNNLAB_ROOT", str(ROOT))  # run folders and data under the repository, wherever started
    sys.argv[1:] = [null_group(arg) for arg in sys.argv[1:]]
    if {"--help", "-h"} & set(sys.argv[1:]):
        from cnnlab.reference import help_text

        print(help_text(config_name))
        sys.exit(0)
    # Lightning, imported for the callbacks' declared options, sends its messages to Hydra's log once Hydra has set
    # it up (on a root logger without handlers it would keep its own on stderr)
    logging.getLogger().addHandler(logging.NullHandler())
    register(config_name)  # the option groups' schemas, before Hydra composes anything
    os.environ.setdefault("CNNLAB_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR", "0"))  # as the user set it
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)(friendly_errors(task))()
    except Exception as err:
        if full_error() or getattr(err, "from_task", False):
            raise
        print(f"error: {reworded(err, sys.argv[1:])}", file=sys.stderr)
        sys.exit(2)


def full_error() -> bool:
    return os.environ.get("CNNLAB_FULL_ERROR", os.environ.get("HYDRA_FULL_ERROR")) == "1"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def hydra_job():
    """Where this run sits in Hydra's launch (a sweep job, or a single run), for the plan."""
    from hydra.core.hydra_config import HydraConfig

    from cnnlab.run.plans import Job

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
    """Own errors end the run with `error: ...` and exit code 2 (a sweep job's go to its error.txt and the sweep goes
    on); anything else is a bug, raised with its traceback. Either way the run's folder says why it stopped."""

    @functools.wraps(task)
    def run_task(*args, **kwargs):
        try:
            return task(*args, **kwargs)
        except Exception as err:
            if in_multirun():
                return _job_failed(err)
            message = own_message(err)
            record_stop(f"error: {message}" if message and not full_error() else traceback.format_exc())
            if message is None or full_error():
                err.from_task = True
                raise
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)

    return run_task


class OutputDirCheck(Callback):
    """Hydra callback: the run (or sweep) folder must be creatable before Hydra makes it, or the user gets Hydra's
    traceback instead of a sentence; and a run folder that holds an earlier run is refused before Hydra writes its
    .hydra/ into it (a run that continues it, with its own checkpoint as ckpt_path, may). A sweep's launcher and
    loggers are checked before its first job."""

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
        from cnnlab.run.plans import refuse_earlier_run

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
        from omegaconf import OmegaConf

        from cnnlab.loggers import ready

        try:  # an account missing would stop every job, one by one
            ready(OmegaConf.to_container(config.logger, resolve=False) if config.get("logger") else None)
        except CnnlabError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
