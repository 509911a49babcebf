"""`trainer.*`: Lightning's Trainer arguments (conf/trainer/). Every argument of the installed Lightning's Trainer can
be set as `trainer.X=...` (the Hydra schema lists them all); the ones cnnlab itself reads are declared and checked
here, the rest go to Lightning as given, and a Trainer that Lightning refuses is one sentence when it is made
(`run/build.py`), before any data is read. Defaults cnnlab chooses for arguments it does not read (one sanity batch,
no model summary, ...) live in conf/trainer/default.yaml."""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import (
    Checker,
    OptionError,
    boolean,
    choice,
    integer,
    is_int,
    is_number,
    non_negative,
    optional,
    positive_int,
    suggest,
)
from cnnlab.checks.options import Options, option

TARGETS = ("pytorch_lightning.Trainer", "lightning.pytorch.Trainer")
PRECISIONS = ("32-true", "32", "16-mixed", "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "transformer-engine",
              "transformer-engine-float16")
SET_BY_CNNLAB = ("logger", "callbacks")  # from the logger= and callbacks= groups


@functools.cache
def lightning_arguments() -> dict[str, Any]:
    """The installed Lightning Trainer's keyword arguments and their defaults, read from its source with `ast`
    (importing Lightning takes seconds; this takes milliseconds, so that `--help` and bad-input errors stay fast)."""
    spec = importlib.util.find_spec("pytorch_lightning")
    source = Path(spec.origin).parent / "trainer" / "trainer.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == "Trainer":
            init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
            return {a.arg: ast.literal_eval(d) if d is not None else None
                    for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults)}
    raise RuntimeError(f"no Trainer class in {source}")  # pragma: no cover - Lightning changed its layout


def _limit(value: Any) -> int | float | None:
    if value is None or (is_int(value) and value >= 0):
        return value
    if is_number(value) and 0 <= value <= 1:
        return float(value)
    raise ValueError("a number of batches (an integer >= 0) or a fraction 0..1 of them, or null for all")


def _precision(value: Any) -> str:
    value = str(value) if is_int(value) else value
    if value in ("64", "64-true", "double"):
        raise ValueError("32-true, 16-mixed or bf16-mixed (cnnlab feeds float32 images, which 64-bit weights "
                         "would not take)")
    if value in PRECISIONS:
        return value
    raise ValueError(f"one of {', '.join(PRECISIONS[:6])}")


limit = Checker(_limit, (-1, 1.5, "all"))


def _text(value: Any, what: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError(what)


def _devices(value: Any) -> Any:
    """Lightning's devices: "auto", a count (-1: all), a list of device indices, or their comma-separated text."""
    if value == "auto" or (is_int(value) and (value >= 1 or value == -1)):
        return value
    indices = value.split(",") if isinstance(value, str) else value
    if isinstance(indices, list | tuple) and indices and all(str(i).strip().isdigit() for i in indices) and \
            len(set(map(str, indices))) == len(indices) and not isinstance(value, bool):
        return value
    raise ValueError("auto, a number of devices (>= 1, or -1 for all), or a list of distinct device indices, e.g. "
                     "[0, 1]")


def _interval(value: Any) -> int | float | None:
    if value is None or (is_int(value) and value >= 1):
        return value
    if is_number(value) and 0 < value <= 1:
        return float(value)
    raise ValueError("a number of training batches (an integer >= 1) or a fraction of the epoch 0 < x <= 1, or null "
                     "for once per epoch")


@dataclass(frozen=True, kw_only=True)
class TrainerOptions(Options):
    """The Trainer arguments cnnlab itself reads; `other` holds every further Lightning argument, as given."""

    where = "trainer."

    accelerator: str = option(choice("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu"), "auto", "the device kind")
    strategy: str = option(Checker(lambda v: _text(v, "a strategy name, e.g. ddp"), (3, "")), "auto",
                           "auto, ddp, ddp_spawn, ddp_fork, fsdp, ...")
    num_nodes: int = option(positive_int, 1, "machines")
    precision: str = option(Checker(_precision, ("64-true", "8-mixed", 64)), "32-true", "arithmetic precision")
    max_epochs: int = option(integer(-1, example=12), 12, "epochs to train (-1: until max_steps)")
    max_steps: int = option(integer(-1), -1, "steps to train (-1: until max_epochs)")
    limit_train_batches: Any = option(limit, None, "training batches per epoch")
    limit_val_batches: Any = option(limit, None, "validation batches per evaluation")
    limit_test_batches: Any = option(limit, None, "test batches (and training-set report batches)")
    val_check_interval: Any = option(Checker(_interval, (0, -1, 1.5, "often")), None,
                                     "validate every N training batches or fraction of an epoch (null: per epoch)")
    log_every_n_steps: int = option(positive_int, 50, "steps between logged values (and NaN checks)")
    enable_progress_bar: bool | None = option(optional(boolean), None, "null: a bar in a terminal, lines elsewhere")
    enable_checkpointing: bool | None = option(optional(boolean), None,
                                               "false: no checkpoints (the checkpoint callbacks are left out)")
    devices: Any = option(Checker(_devices, (0, -2, [], "x", True)), 1, "devices per node: a count, -1 or indices")
    deterministic: bool | str = option(choice(False, True, "warn"), False,
                                       "deterministic algorithms (slower; README.md 'Reproducibility')")
    accumulate_grad_batches: int = option(positive_int, 1, "batches whose gradients add up to one optimizer step")
    gradient_clip_val: float | None = option(optional(non_negative), None,
                                             "clip the gradients to this total norm (or value); null or 0: not clipped")
    gradient_clip_algorithm: str | None = option(optional(choice("norm", "value")), None, "null: norm")
    num_sanity_val_steps: int = option(integer(-1), 1, "validation batches before training (-1: all)")
    other: Mapping[str, Any] = option(Checker(dict, ()), {}, "further Lightning arguments, as given")

    @classmethod
    def read(cls, values: Mapping[str, Any] | None, where: str | None = None) -> TrainerOptions:
        values = dict(values or {})
        target = values.pop("_target_", TARGETS[0])
        if target not in TARGETS:
            raise OptionError(f"trainer._target_ = {target!r}; expected {TARGETS[0]} (cnnlab trains with Lightning's "
                              "Trainer; its arguments are the trainer.* options).")
        known, lightning = cls.fields(), lightning_arguments()
        for key in SET_BY_CNNLAB:
            if values.get(key) is not None:
                raise OptionError(f"trainer.{key} is set by cnnlab from the {key}= group; choose {key}=<name> (conf/"
                                  f"{key}/) instead of trainer.{key}.")
            values.pop(key, None)
        for key in values:
            if key not in known and key not in lightning:
                raise OptionError(f"trainer.{key} is not an argument of Lightning's Trainer."
                                  + suggest(key, [*known, *lightning]))
        other = {k: v for k, v in values.items() if k not in known and v is not None}  # null: Lightning's default
        mine = {k: v for k, v in values.items() if k in known}
        return super().read({**mine, "other": other}, where)

    def validate(self) -> None:
        if self.max_epochs == 0 or self.limit_train_batches in (0, 0.0):
            key = "max_epochs" if self.max_epochs == 0 else "limit_train_batches"
            raise OptionError(f"trainer.{key} = 0 trains nothing, and the report would describe random weights; "
                              "give at least 1 (or use eval.py to evaluate a checkpoint).")
        if self.max_epochs == -1 and self.max_steps == -1:
            raise OptionError("trainer.max_epochs = -1 trains until trainer.max_steps, which is -1 too; set one of "
                              "them to a positive number.")

    def shortened(self) -> str | None:
        """The limits that cut the run's phases short (debug=fast, limit_*_batches), as text; None when none does.
        An int limit is a number of batches (1 is one batch), a float a fraction (1.0 is all of them)."""
        limits = [f"{what} {value}" for what, value in (("training batches per epoch", self.limit_train_batches),
                                                       ("validation batches", self.limit_val_batches),
                                                       ("test batches per evaluated split", self.limit_test_batches))
                  if value is not None and not (isinstance(value, float) and value == 1.0)]
        return ", ".join(limits) or None

    def check_devices(self) -> None:
        """GPUs asked for must be there (imports torch: called once the plan needs it anyway)."""
        if self.accelerator in ("gpu", "cuda"):
            import torch

            if not torch.cuda.is_available():
                raise OptionError(f"trainer.accelerator = {self.accelerator!r}, but torch sees no CUDA GPU on this "
                                  "machine (torch.cuda.is_available() is false); use trainer=cpu (or trainer=default), "
                                  "or run on a machine with a GPU and a CUDA build of torch.")

    def kwargs(self) -> dict[str, Any]:
        """The Trainer's keyword arguments (cnnlab's checked ones, then the others as given)."""
        out = {k: v for k, v in self.__dict__.items() if k != "other" and v is not None}
        return {**out, **self.other}


def trainer_schema() -> type:
    """The Hydra schema of the trainer group: every Lightning Trainer argument (null: Lightning's default), cnnlab's
    checked ones with cnnlab's defaults, and the `_target_` Hydra instantiates."""
    import dataclasses

    defaults = {"_target_": TARGETS[0], **{k: None for k in lightning_arguments() if k not in SET_BY_CNNLAB},
                **{k: v for k, v in TrainerOptions.defaults().items() if k != "other"}}
    fields = [(k, Any, dataclasses.field(default=v)) for k, v in defaults.items()]
    return dataclasses.make_dataclass("TrainerSchema", fields)
