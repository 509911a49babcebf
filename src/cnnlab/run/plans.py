"""`python src/train.py` and `python src/eval.py`: the whole config checked once into a frozen plan, before anything is
built or read; code below takes plans, never a config."""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import (
    OptionError,
    boolean,
    checkpoint,
    number,
    optional,
    positive_int,
    seed_value,
    text,
)
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import earlier_run, writable
from cnnlab.compose import plain
from cnnlab.data.family import read_data
from cnnlab.data.options import DataOptions
from cnnlab.layers.arch import Arch, read_arch
from cnnlab.loggers import read_loggers
from cnnlab.model.options import ModelOptions, views
from cnnlab.nodes import Master, read_nodes
from cnnlab.optim import Optimisation, read_optimisation
from cnnlab.run.resume import check_resume
from cnnlab.run.trainer import TrainerOptions
from cnnlab.targets import read_callbacks

log = logging.getLogger("cnnlab")

@dataclass(frozen=True)
class Job:
    """Where a run sits in Hydra's launch: a sweep job (its folder, number and overrides) or a single run."""

    sweep_dir: Path | None = None
    name: str = ""  # the job's overrides as a folder name (dashboards name sweep runs by it)
    overrides: tuple[str, ...] = ()  # as typed: the command that continues an interrupted run repeats them

    @property
    def in_sweep(self) -> bool:
        return self.sweep_dir is not None


@dataclass(frozen=True, kw_only=True)
class RunOptions(Options):
    """The root options of train.yaml."""

    task_name: str = option(text, "train", "the entry point (runs go to outputs/<task_name>/)")
    seed: int = option(seed_value, 42, "seeds Python, NumPy and torch (init, shuffling, augmentation)")
    ckpt_path: Path | None = option(optional(checkpoint), None, "a checkpoint to resume from")
    test: bool = option(boolean, True, "evaluate the best checkpoint on the test split after training")
    checkpoint_every_n_steps: int | None = option(optional(positive_int), None, "also write last.ckpt every N steps")
    master_timeout_s: float = option(number(0, low_open=True, example=300), 300.0,
                                     "multi-node by hand: how long a node waits for its master")


SECTIONS = ("arch", "model", "data", "trainer", "optim", "scheduler", "logger", "callbacks", "paths", "hydra")


@dataclass(frozen=True)
class TrainPlan:
    """Everything a training run is, checked: what `build(plan)` assembles and `train(plan)` runs."""

    run: RunOptions
    arch: Arch
    data: DataOptions
    data_config: dict[str, Any]  # the data config as given (checkpoints carry it; a resume must match it)
    model: ModelOptions
    optimisation: Optimisation
    trainer: TrainerOptions
    loggers: dict[str, dict[str, Any]]
    callbacks: dict[str, dict[str, Any]]
    out: Path
    data_dir: Path
    master: Master | None
    config: dict[str, Any]  # the whole resolved config: config.yaml, dashboards
    job: Job = dataclasses.field(default_factory=Job)
    resume_epoch: int | None = None  # the epoch of the checkpoint this run continues (ckpt_path)
    quiet: bool = False  # no layer table or progress lines (a search trial)

    def replace(self, **changes: Any) -> TrainPlan:
        return dataclasses.replace(self, **changes)


def check_train(cfg: Any, job: Job | None = None, check_place: bool = True) -> TrainPlan:
    """train.py's config, every value checked, into a frozen plan. `check_place`: refuse a run folder holding an
    earlier run (Hydra's callback already did for the command line; in-process callers get the same check)."""
    job = job or Job()
    config = plain(cfg)
    roots = {k: v for k, v in config.items() if k not in SECTIONS}
    run = RunOptions.read(roots, "")
    arch = read_arch(config.get("arch") or {})
    model = ModelOptions.read(config.get("model"))
    model.check_backend()
    data = read_data(dict(config.get("data") or {}))
    trainer = adjusted_trainer(TrainerOptions.read(config.get("trainer")), job)
    if run.checkpoint_every_n_steps and trainer.enable_checkpointing is False:
        raise OptionError(f"checkpoint_every_n_steps={run.checkpoint_every_n_steps} writes checkpoints and "
                          "trainer.enable_checkpointing=false turns them off; leave one of the two out.")
    master = read_nodes(trainer.num_nodes, run.master_timeout_s)
    paths = config.get("paths") or {}
    out = writable(Path(paths.get("output_dir") or "outputs/train/run"), "hydra.run.dir")
    if check_place and not job.in_sweep:
        refuse_earlier_run(out, run.ckpt_path)
    data_config = dict(config.get("data") or {})
    optimisation = read_optimisation(config.get("optim") or {}, config.get("scheduler"), model.reg)
    resume_epoch = check_resume(run.ckpt_path, arch, data_config, optimisation.optimizer, trainer.max_epochs) \
        if run.ckpt_path else None
    check_matrices(optimisation.optimizer, arch.specs)
    trainer.check_devices()
    sweep = (job.sweep_dir, job.name) if job.in_sweep else None
    loggers = read_loggers(config.get("logger"), out, sweep)
    callbacks = read_callbacks(config.get("callbacks"), trainer.enable_checkpointing)
    return TrainPlan(run=run, arch=arch, data=data, data_config=data_config, model=model, optimisation=optimisation,
                     trainer=trainer, loggers=loggers, callbacks=callbacks, out=out,
                     data_dir=Path(paths.get("data_dir") or "data"), master=master, config=config, job=job,
                     resume_epoch=resume_epoch)


def check_matrices(optimizer, specs) -> None:
    """An optimizer for C and FC weights (optim=muon) needs a list that has some (a search trial's list too)."""
    from cnnlab.layers.spec import muon_layers
    from cnnlab.optim import wants_matrices

    if wants_matrices(optimizer) and not muon_layers(specs):
        raise OptionError("optim=muon orthogonalises the weights of C and FC layers, and this layer list has none that "
                          "train (T, biases, batch norm and frozen or whitening kernels are not for Muon); add a C or "
                          "FC layer, or choose another optimizer (optim=sgd, optim=adam).")


def refuse_earlier_run(out: Path, ckpt_path: Path | None) -> None:
    """A run folder that holds an earlier run is never written into, unless this run continues that one."""
    found = earlier_run(out)
    if not found or (ckpt_path is not None and out.resolve() in Path(ckpt_path).resolve().parents):
        return
    last = out / "checkpoints" / "last.ckpt"
    resume = f"continue it with ckpt_path={last} hydra.run.dir={out}, " if last.is_file() else ""
    raise OptionError(f"hydra.run.dir={out} holds an earlier run ({', '.join(found)}), which this run would "
                      f"overwrite; {resume}or choose another folder (or leave hydra.run.dir out for a new dated one).")


def adjusted_trainer(trainer: TrainerOptions, job: Job) -> TrainerOptions:
    """Strategies that cannot work where the run is: DDP re-launches the command line, which would re-run a whole sweep
    in every process (a sweep job trains with ddp_fork on the CPU, ddp_spawn on GPUs); a forked run tests in a second
    child that on other nodes would not know the best checkpoint (one process per device instead). The progress bar
    needs a terminal; elsewhere (nohup, SLURM, CI, a pipe) cnnlab logs lines."""
    changes: dict[str, Any] = {}
    if trainer.enable_progress_bar is None:
        changes["enable_progress_bar"] = sys.stdout.isatty()
    if job.in_sweep and trainer.strategy == "ddp":
        replacement = "ddp_fork" if trainer.accelerator == "cpu" else "ddp_spawn"
        log.warning("multirun: trainer.strategy=ddp re-launches the command line, which would re-run the sweep in "
                    "every process; this job uses %s instead (or launch one job per run with SLURM).", replacement)
        changes["strategy"] = replacement
    elif not job.in_sweep and trainer.num_nodes > 1 and trainer.strategy in ("ddp_fork", "ddp_spawn"):
        log.info("trainer.num_nodes=%s: trainer.strategy=%s becomes ddp (one process per device, started by "
                 "Lightning, torchrun or SLURM)", trainer.num_nodes, trainer.strategy)
        changes["strategy"] = "ddp"
    return dataclasses.replace(trainer, **changes) if changes else trainer

@dataclass(frozen=True, kw_only=True)
class EvalOptions(Options):
    task_name: str = option(text, "eval", "the entry point (runs go to outputs/<task_name>/)")
    seed: int = option(seed_value, 42, "seeds the evaluation (nothing random by default)")
    ckpt_path: Path = option(checkpoint, help="the checkpoint to evaluate")
    tta: tuple[str, ...] | None = option(optional(views), None, "test-time views: null keeps the checkpoint's "
                                         "model.tta; [] none; [flip], [flip, translate] or [flip, crops]")


@dataclass(frozen=True)
class EvalPlan:
    seed: int
    ckpt_path: Path
    trained_on: dict[str, Any]  # the checkpoint's data info
    data: DataOptions
    data_dir: Path
    trainer: TrainerOptions
    loggers: dict[str, dict[str, Any]]
    out: Path
    config: dict[str, Any]
    tta: tuple[str, ...] | None = None  # the views that vote: None, the checkpoint's own
    callbacks: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def check_data(self, datamodule) -> None:
        """Another data set than the checkpoint's must have its input shape and classes."""
        shape, classes = list(datamodule.input_shape), datamodule.num_classes
        trained = self.trained_on
        if shape != list(trained["input_shape"]) or classes != len(trained["class_names"]):
            raise OptionError(f"data={self.data.family} has input {shape} and {classes} classes, but the checkpoint "
                              f"was trained on {trained['input_shape']} with {len(trained['class_names'])}.")


def check_eval(cfg: Any, job: Job | None = None, check_place: bool = True) -> EvalPlan:
    job = job or Job()
    from cnnlab.inference import read_cnnlab_checkpoint

    config = plain(cfg)
    if config.get("ckpt_path") in (None, "???"):
        raise OptionError("eval.py needs ckpt_path=CHECKPOINT: a checkpoint written by train.py, e.g. "
                          "ckpt_path=outputs/train/<run>/checkpoints/best.ckpt.")
    options = EvalOptions.read({k: config[k] for k in ("task_name", "seed", "ckpt_path", "tta") if k in config}, "")
    _, saved = read_cnnlab_checkpoint(options.ckpt_path)
    if options.tta is not None:  # the views against the images' size, as train.py checks model.tta
        model = ModelOptions.read({**saved.get("options", {}), "tta": list(options.tta)})
        model.check_input(saved["data_info"]["input_shape"])
    data_config = config.get("data") or saved["data_info"]["config"]
    data = read_data(dict(data_config))
    trainer = adjusted_trainer(TrainerOptions.read(config.get("trainer")), job)
    paths = config.get("paths") or {}
    out = writable(Path(paths.get("output_dir") or "outputs/eval/run"), "hydra.run.dir")
    if check_place and not job.in_sweep:
        refuse_earlier_run(out, None)
    loggers = read_loggers(config.get("logger"), out, (job.sweep_dir, job.name) if job.in_sweep else None)
    return EvalPlan(options.seed, options.ckpt_path, saved["data_info"], data, Path(paths.get("data_dir") or "data"),
                    trainer, loggers, out, config, options.tta)
