"""`python src/predict.py` and `python src/export.py`: a checkpoint and where the predictions or the model file go,
checked before the model is loaded."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError, checkpoint, choice, existing_path, optional, positive_int, text
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import new_file
from cnnlab.checks.train import plain

FORMATS = {"onnx": ".onnx", "torch_export": ".pt2"}


@dataclass(frozen=True, kw_only=True)
class PredictOptions(Options):
    task_name: str = option(text, "predict", "the entry point")
    ckpt_path: Path = option(checkpoint, help="the checkpoint to predict with")
    input: Path = option(existing_path("an image, a folder of images or a .npy array"),
                         help="an image (PNG, JPEG, ...), a folder of images, or a .npy array")
    output: str | None = option(optional(text), None, "the CSV to write (null: predictions.csv in the run folder)")
    batch_size: int = option(positive_int, 256, "images per forward pass")


@dataclass(frozen=True, kw_only=True)
class ExportOptions(Options):
    task_name: str = option(text, "export", "the entry point")
    ckpt_path: Path = option(checkpoint, help="the checkpoint to export")
    format: str = option(choice(*FORMATS), "onnx", "onnx (checked with onnxruntime) or torch_export (.pt2)")
    output: str | None = option(optional(text), None, "the model file (null: model.onnx / model.pt2 in the run folder)")


def _required(config: dict[str, Any], keys: tuple[str, ...], script: str) -> None:
    for key in keys:
        if config.get(key) in (None, "???"):
            example = {"ckpt_path": "ckpt_path=outputs/train/<run>/checkpoints/best.ckpt",
                       "input": "input=photos/ (an image, a folder of images or a .npy array)"}[key]
            raise OptionError(f"{script} needs {key}=...: {example}.")


def _output(given: str | None, config: dict[str, Any], default: str) -> Path:
    return new_file(Path(given) if given else Path(config["paths"]["output_dir"]) / default, "output")


def check_predict(cfg: Any) -> tuple[PredictOptions, Path]:
    """(the options, the CSV to write)."""
    config = plain(cfg)
    _required(config, ("ckpt_path", "input"), "predict.py")
    options = PredictOptions.read({k: v for k, v in config.items() if k != "paths"}, "")
    return options, _output(options.output, config, "predictions.csv")


def check_export(cfg: Any) -> tuple[ExportOptions, Path]:
    """(the options, the model file to write); the export format's packages are there."""
    config = plain(cfg)
    _required(config, ("ckpt_path",), "export.py")
    options = ExportOptions.read({k: v for k, v in config.items() if k != "paths"}, "")
    if options.format == "onnx":
        for module in ("onnx", "onnxruntime"):
            try:
                importlib.import_module(module)
            except ImportError:
                raise OptionError(f"format=onnx needs the {module} package: pip install -e '.[export]'.") from None
    return options, _output(options.output, config, f"model{FORMATS[options.format]}")
