"""`python src/eval.py ckpt_path=...`: a checkpoint and the data set to test it on, checked into a plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.checks.data import DataOptions, read_data
from cnnlab.checks.fields import OptionError, checkpoint, text
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import writable
from cnnlab.checks.train import SEED, Job, adjusted_trainer, plain, refuse_earlier_run
from cnnlab.checks.trainer import TrainerOptions
from cnnlab.loggers import read_loggers


@dataclass(frozen=True, kw_only=True)
class EvalOptions(Options):
    task_name: str = option(text, "eval", "the entry point (runs go to outputs/<task_name>/)")
    seed: int = option(SEED, 42, "seeds the evaluation (nothing random by default)")
    ckpt_path: Path = option(checkpoint, help="the checkpoint to evaluate")


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
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)

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
    options = EvalOptions.read({k: config[k] for k in ("task_name", "seed", "ckpt_path") if k in config}, "")
    _, saved = read_cnnlab_checkpoint(options.ckpt_path)
    data_config = config.get("data") or saved["data_info"]["config"]
    data = read_data(dict(data_config))
    trainer = adjusted_trainer(TrainerOptions.read(config.get("trainer")), job)
    paths = config.get("paths") or {}
    out = writable(Path(paths.get("output_dir") or "outputs/eval/run"), "hydra.run.dir")
    if check_place and not job.in_sweep:
        refuse_earlier_run(out, None)
    loggers = read_loggers(config.get("logger"), out, (job.sweep_dir, job.name) if job.in_sweep else None)
    return EvalPlan(options.seed, options.ckpt_path, saved["data_info"], data, Path(paths.get("data_dir") or "data"),
                    trainer, loggers, out, config)
