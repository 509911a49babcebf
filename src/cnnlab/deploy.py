"""`python src/predict.py` and `python src/export.py`: a checkpoint and where the predictions or the model file go,
checked before the model is loaded; then class probabilities for image files, and files that run without cnnlab."""

import csv
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.checks.errors import ConfigError
from cnnlab.checks.fields import OptionError, checkpoint, choice, existing_path, optional, positive_int, text
from cnnlab.checks.options import Options, option
from cnnlab.checks.places import new_file
from cnnlab.compose import plain
from cnnlab.images import read_inputs
from cnnlab.inference import Deployable, load_classifier

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


def predict(options: PredictOptions, out: Path) -> Path:
    """predictions.csv (file, predicted class, one probability column per class) and a console table."""
    model = load_classifier(options.ckpt_path)
    names, images = read_inputs(options.input, model.input_shape)
    probs = model.probabilities(images, options.batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    best = probs.argmax(1).tolist()
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "predicted", "probability", *(f"p_{c}" for c in model.class_names)])
        for name, k, row in zip(names, best, probs.tolist()):
            writer.writerow([name, model.class_names[k], f"{row[k]:.6f}", *(f"{p:.6f}" for p in row)])
    width = max(len(n) for n in names[:20])
    for name, k, row in list(zip(names, best, probs.tolist()))[:20]:
        print(f"{name:{width}s}  {model.class_names[k]:>12s}  {row[k]:.4f}")
    if len(names) > 20:
        print(f"... {len(names) - 20} more")
    print(f"{len(names)} predictions: {out}")
    return out


def export(options: ExportOptions, out: Path) -> Path:
    """The model with its normalisation as ONNX (checked with onnxruntime) or a torch.export program (.pt2)."""
    model = load_classifier(options.ckpt_path)
    module = Deployable(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(4, *model.input_shape)
    batch = {0: torch.export.Dim("batch", min=1, max=1 << 16)}
    if options.format == "onnx":
        _to_onnx(module, example, batch, out, model.class_names)
        run = _onnx_runner(out)
    else:
        program = torch.export.export(module, (example,), dynamic_shapes=(batch,))
        torch.export.save(program, out, extra_files={"class_names.json": json.dumps(model.class_names)})
        loaded = torch.export.load(out).module()

        def run(x):
            return loaded(torch.from_numpy(x)).detach().numpy()

    check = torch.rand(7, *model.input_shape)
    with torch.no_grad():
        expected = module(check).numpy()
    diff = float(np.abs(run(check.numpy()) - expected).max())
    if diff > 1e-4:
        raise ConfigError(f"{out}: the exported model differs from the PyTorch model by {diff:.2e}.")
    print(f"exported {out} ({options.format}); input 'image' float32 N x {' x '.join(map(str, model.input_shape))} "
          f"in 0..1, output {'probabilities' if model.softmax_output else 'logits'} over "
          f"{len(model.class_names)} classes; max difference from PyTorch on a test batch: {diff:.1e}")
    return out


def _to_onnx(module, example, batch, out: Path, class_names: list[str]) -> None:
    import onnx
    torch.onnx.export(module, (example,), str(out), dynamo=True, dynamic_shapes=(batch,), input_names=["image"],
                      output_names=["output"], external_data=False, verbose=False)
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "class_names", json.dumps(class_names)
    onnx.save(proto, str(out))


def _onnx_runner(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x.astype(np.float32)})[0]
