"""Using a trained model without its data set: everything needed (layer list, input shape, normalisation,
class names) is in the checkpoint, which is loaded with `weights_only` (plain data and tensors, never code)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.checks.errors import ArchError, CnnlabError
from cnnlab.layers import build_network


@dataclass
class Classifier:
    """The network plus what turns images into its input and its output into class names."""

    net: nn.Module
    input_shape: tuple[int, int, int]
    class_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    softmax_output: bool

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (or float 0..1) images N x C x H x W -> the normalised float input the network was trained on."""
        x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
        return (x - self.mean) / self.std

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        self.net.eval()
        return torch.cat([self.net(self.preprocess(b)).softmax(1) for b in images.split(batch_size)])


class Deployable(nn.Module):
    """What `export.py` writes: float images in 0..1 in, probabilities out (logits where `T` has no softmax)."""

    def __init__(self, model: Classifier):
        super().__init__()
        self.net, self.softmax = model.net, model.softmax_output
        self.register_buffer("mean", model.mean.clone())
        self.register_buffer("std", model.std.clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.net((image - self.mean) / self.std)
        return logits.softmax(1) if self.softmax else logits


def _file_kind(path: Path) -> str:
    """What a file that torch cannot load looks like, from its first bytes: for the error message."""
    head = path.read_bytes()[:512]
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save's format) that torch cannot read: truncated or damaged"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return "a bare pickle (torch.save's legacy format or another program's)"
    if not head:
        return "an empty file"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "binary data of another kind"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"ckpt_path={path} does not exist; runs keep theirs in "
                          "outputs/<task>/<run>/checkpoints/ (best.ckpt, last.ckpt).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, corrupt, not a checkpoint, or carrying code
        # torch's own message explains its weights_only default at length; one sentence serves better
        if "GLOBAL" in str(err):
            found = "a torch.save file that refers to code (refused: checkpoints are read as plain data, never run)"
        else:
            found = _file_kind(path)
        hint = " Was it completely written?" if "truncated" in found else ""
        raise CnnlabError(f"cannot read checkpoint {path}: it is not a cnnlab checkpoint (a torch.save file "
                          f"written by train.py, e.g. checkpoints/last.ckpt); found {path.stat().st_size:,} bytes "
                          f"of {found}.{hint}") from None


def read_cnnlab_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(checkpoint, its hyper-parameters), refusing a file without cnnlab's layer list, data info and weights."""
    checkpoint = read_checkpoint(path)
    saved = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if "layers" not in saved or not saved.get("data_info") or "state_dict" not in checkpoint:
        raise CnnlabError(f"{path} is not a cnnlab checkpoint (no layer list, data info or weights in it).")
    return checkpoint, saved


def load_classifier(path: str | Path) -> Classifier:
    checkpoint, saved = read_cnnlab_checkpoint(path)
    info = saved["data_info"]
    try:
        net = build_network(saved["layers"], tuple(info["input_shape"]), len(info["class_names"]))
    except ArchError as err:
        raise CnnlabError(f"{path}: its layer list does not build: {err}") from None
    # torch.compile saves its wrapped module's weights under _orig_mod.
    weights = {k.removeprefix("net.").replace("_orig_mod.", ""): v
               for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise CnnlabError(f"{path}: its weights do not fit its own layer list (a checkpoint of another "
                          f"architecture, or a damaged file): {str(err).splitlines()[0]}") from None
    c = info["input_shape"][0]
    return Classifier(net.eval(), tuple(info["input_shape"]), list(info["class_names"]),
                      torch.tensor(info["mean"]).view(1, c, 1, 1), torch.tensor(info["std"]).view(1, c, 1, 1),
                      net.output_activation == "softmax")
