"""`model.*`: the LightningModule's options (conf/model/), shared by train.py and search.py trials."""

from dataclasses import dataclass
from typing import Any

from cnnlab.checks.fields import (
    Checker,
    OptionError,
    boolean,
    choice,
    non_negative,
    number,
    positive_int,
    positive_number,
    probability,
)
from cnnlab.checks.options import Options, nested, option

TTA_VIEWS = ("flip", "translate", "crops")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def _views(value: Any) -> tuple[str, ...]:
    """`model.tta` (and eval.py's `tta`): null, one view, or a list of distinct views, at most one kind of shift."""
    if value is None:
        return ()
    views = (value,) if isinstance(value, str) else value
    if isinstance(views, list | tuple) and all(v in TTA_VIEWS for v in views) and len(set(views)) == len(views) \
            and not {"translate", "crops"} <= set(views):
        return tuple(views)
    raise ValueError(f"a list of distinct views among {', '.join(TTA_VIEWS)}, with one kind of shift at most "
                     "(translate: one-pixel shifts, crops: four corner shifts), e.g. [flip], [flip,translate] or "
                     "[flip,crops] (or null for none)")


views = Checker(_views, ("rotate", ["flip", "flip"], ["translate", "crops"], 3))


def _backend(value: Any) -> bool | str:
    """`model.compile`: false, true (inductor) or a torch.compile backend's name (checked against torch's list)."""
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    if value is None:
        return False
    raise ValueError("true (inductor), false, or a torch.compile backend's name")


@dataclass(frozen=True, kw_only=True)
class Mixing(Options):
    """One batch-level mixing regulariser: its Beta(alpha, alpha) and the share of training batches it mixes."""

    alpha: float = option(positive_number, 1.0, "the Beta distribution's parameter: 0.2 mixes gently, 1 uniformly")
    share: float = option(probability, 0.0, "the fraction of training batches it mixes (0: off)")


@dataclass(frozen=True, kw_only=True)
class ModelOptions(Options):
    where = "model."

    reg: float = option(non_negative, 1e-3, "the seed's L2 penalty reg * sum(||W||^2) / 2, as weight decay")
    label_smoothing: float = option(number(0, 1, high_open=True), 0.0, "cross-entropy label smoothing")
    tta: tuple[str, ...] = option(views, None,
                                  "test-time views of the test split: [flip], [flip, translate], [flip, crops]")
    tta_shift: int = option(positive_int, 2, "pixels: how far the corner views of model.tta=[..., crops] shift")
    bn_bias_lr_scale: float = option(positive_number, 1.0, "learning rate x this for batch-norm shifts (airbench: 64)")
    channels_last: bool = option(boolean, False, "NHWC memory layout (faster convolutions on recent GPUs and CPUs)")
    compile: bool | str = option(Checker(_backend, (3, "")), False, "torch.compile the network: true or a backend")
    compile_mode: str | None = option(choice(None, "default", "reduce-overhead", "max-autotune",
                                             "max-autotune-no-cudagraphs"), None, "inductor's mode")
    mixup: Mixing = option(nested(Mixing, "model.mixup."), {"alpha": 0.2, "share": 0.0},
                           "mixup (torchvision's MixUp) on this share of training batches")
    cutmix: Mixing = option(nested(Mixing, "model.cutmix."), {"alpha": 1.0, "share": 0.0},
                            "cutmix (torchvision's CutMix) on this share of training batches")

    def validate(self) -> None:
        total = self.mixup.share + self.cutmix.share
        if total > 1 + 1e-9:
            raise OptionError(f"model.mixup.share + model.cutmix.share = {total:g}; together they can mix at most "
                              "every batch (a sum <= 1).")
        if self.compile_mode is not None and self.compile not in (True, "inductor"):
            raise OptionError(f"model.compile_mode = {self.compile_mode!r} is inductor's, but model.compile = "
                              f"{self.compile!r}; set model.compile=true or model.compile_mode=null.")

    def check_input(self, input_shape: tuple[int, int, int]) -> None:
        """Views that fit the images: reflect padding needs a shift below each side (checked once the data set's
        input shape is known, before training)."""
        h, w = input_shape[1:]
        if "crops" in self.tta and self.tta_shift >= min(h, w):
            raise OptionError(f"model.tta_shift = {self.tta_shift}: the corner views shift the {h}x{w} test images "
                              f"by that many pixels, which must be less than their side; use model.tta_shift "
                              f"<= {min(h, w) - 1}.")
        if "translate" in self.tta and min(h, w) < 2:
            raise OptionError(f"model.tta = {list(self.tta)}: translate shifts the {h}x{w} test images by one pixel, "
                              "which needs images of at least 2x2; leave translate out.")

    def check_backend(self) -> None:
        """The compile backend against the ones this torch has (imports torch._dynamo: only when compiling)."""
        if self.compile is False:
            return
        import torch._dynamo

        backends = torch._dynamo.list_backends(exclude_tags=())
        backend = "inductor" if self.compile is True else self.compile
        if backend not in backends:
            raise OptionError(f"model.compile = {self.compile!r}; expected true (inductor), false, or a torch.compile "
                              f"backend: {', '.join(b for b in backends if 'TESTING' not in b)}.")

    @property
    def backend(self) -> str | None:
        return None if self.compile is False else "inductor" if self.compile is True else self.compile
