"""The LightningModule: a network built from a layer list, trained with cross-entropy on logits.

The seed's L2 penalty `reg * sum(||W||^2) / 2` over all weights and biases has gradient `reg * W`,
which is exactly the optimizer's (coupled) `weight_decay`; it is applied there, so no extra pass over
the parameters is spent per step and the logged loss is the data loss alone.
"""

import inspect
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from cnnlab.checks.errors import ConfigError
from cnnlab.data.info import DataInfo
from cnnlab.layers import build_network
from cnnlab.model.mixing import Mixer
from cnnlab.model.options import CUDA_GRAPH_MODES, ModelOptions
from cnnlab.model.tta import vote
from cnnlab.optim import MATRIX, decay_kwargs, optimizer_name, wants_matrices
from cnnlab.schedules import takes_total_steps

EVAL_SPLITS = ("test", "train_eval")  # test dataloaders, in order: the test split, the training set unaugmented
VAL_SPLITS = ("val", "test_epoch")  # validation dataloaders: the validation split, the test split if monitored
WHITENING_IMAGES = 5000  # training images an `init: whiten` layer is fitted to (airbench's number)


def fused_kwargs(optimizer_factory: Callable, device: torch.device) -> dict[str, bool]:
    """`fused=True` on CUDA where the optimizer has a fused kernel (Adam, AdamW, SGD, ...) and the config chose
    neither `fused` nor `foreach`: one kernel for every parameter instead of a few per tensor."""
    keywords = getattr(optimizer_factory, "keywords", {})
    if device.type != "cuda" or "fused" in keywords or "foreach" in keywords:
        return {}
    optimizer_class = getattr(optimizer_factory, "func", optimizer_factory)
    return {"fused": True} if "fused" in inspect.signature(optimizer_class).parameters else {}


class RunningStats(Metric):
    """A split's mean loss per image and accuracy over an epoch, in three summed states: seven device ops per batch
    and no host read (torchmetrics' own accuracy and mean check their inputs on every update, which reads the device:
    a sync on a GPU). A non-finite loss makes `loss_sum` non-finite, which StopOnNonFiniteLoss reads at intervals."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
        self.correct += (logits.argmax(1) == target).sum()
        self.count += len(target)
        self.loss_sum += loss.float() * len(target)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, accuracy)."""
        return self.loss_sum / self.count, self.correct / self.count


class LayerListClassifier(pl.LightningModule):
    """`layers` and `data_info` are plain data, as checkpoints hold them; `options` are `model.*` (ModelOptions, or
    its plain form from a checkpoint; an older checkpoint's options come as keyword arguments)."""

    def __init__(
        self,
        layers: list[dict[str, Any]],
        data_info: dict[str, Any],
        options: ModelOptions | dict[str, Any] | None = None,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        **legacy: Any,
    ):
        super().__init__()
        self.options = ModelOptions.read(options if options is not None else legacy)  # missing ones: defaults
        # in checkpoints, as plain data; the loggers get the whole run config from cnnlab.dashboards instead
        self.save_hyperparameters({"layers": layers, "data_info": data_info, "options": self.options.to_dict()},
                                  logger=False)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.info = DataInfo.from_dict(data_info)
        self.tta_views = self.options.tta
        classes = self.info.num_classes
        self.net = build_network(layers, self.info.input_shape, classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=self.options.label_smoothing)
        self.mixer = Mixer(classes, self.options.mixup, self.options.cutmix)
        # every metric is a torchmetrics state, reduced across ranks at a point all ranks reach together
        # (epoch-level self.log(sync_dist=True) syncs lazily, e.g. from rank 0's progress bar, and deadlocks DDP)
        self.stats = nn.ModuleDict({f"{s}_": RunningStats() for s in ("train", *VAL_SPLITS, *EVAL_SPLITS)})
        self.stats["train_"].persistent(True)  # in checkpoints: a run continued mid-epoch reports the whole epoch
        self.confusion = MulticlassConfusionMatrix(classes, validate_args=False)  # labels were checked at load
        self.test_confusion: torch.Tensor | None = None
        self.history: dict[str, dict[int, float]] = {}  # metric -> {epoch: value}: the curves, kept in checkpoints

    def setup(self, stage: str) -> None:
        # before Lightning restores a checkpoint, so a resumed run keeps its trained weights
        if stage == "fit" and self.net.needs_data_init and self.trainer is not None:
            if not hasattr(self.trainer.datamodule, "train_sample"):
                raise ConfigError("init: whiten needs the training images: fit with one of cnnlab's data modules.")
            n = self.net.init_from_data(self.trainer.datamodule.train_sample(WHITENING_IMAGES))
            print(f"init: whitened {n} layer(s) from the first {WHITENING_IMAGES:,} training images")
        if self.options.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.options.backend and "_compiled" not in self.__dict__:
            # kept out of the module tree: checkpoints hold the plain network's weights (no _orig_mod. keys)
            self.__dict__["_compiled"] = torch.compile(self.net, backend=self.options.backend,
                                                       mode=self.options.compile_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        compiled = self.__dict__.get("_compiled")
        if compiled is None:
            return self.net(x)
        if not self.training:  # evaluation batches come in several sizes: one graph for all, not one per size
            torch._dynamo.maybe_mark_dynamic(x, 0)
        out = compiled(x)
        # CUDA graphs reuse their output buffers at the next call: test-time augmentation calls the network several
        # times before it combines the outputs
        return out.clone() if self.options.compile_mode in CUDA_GRAPH_MODES and self.tta_views else out


    # --- steps -------------------------------------------------------------------------------------
    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        target = y
        if split == "train" and self.mixer:
            x, target = self.mixer(x, y)  # mixed probabilities, or the labels for a batch left as it is
        # test-time augmentation on the test split only: validation and the training-set report stay one view
        if split == "test" and self.tta_views:
            logits = vote(self, x, self.tta_views, self.options.tta_shift)
        else:
            logits = self(x)
        loss = self.criterion(logits, target)
        # a mixed batch is scored against each image's larger share; under no_grad: nothing to detach
        self.stats[f"{split}_"].update(logits, y if target is y else target.argmax(1), loss)
        if split == "test":
            self.confusion.update(logits, y)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._step(batch, VAL_SPLITS[dataloader_idx])

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._step(batch, EVAL_SPLITS[dataloader_idx])

    def _log_epoch(self, split: str) -> None:
        stats = self.stats[f"{split}_"]
        if stats.update_count == 0:
            return
        loss, acc = stats.compute()
        values = {f"{split}/loss": loss, f"{split}/acc": acc, f"{split}/err": 1 - acc}
        self.log_dict(values, prog_bar=split == "val", add_dataloader_idx=False)
        if split in ("train", *VAL_SPLITS) and not self.trainer.sanity_checking:  # one read per epoch and split
            for key, value in values.items():
                self.history.setdefault(key, {})[self.current_epoch] = float(value)
        stats.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        for split in VAL_SPLITS:
            self._log_epoch(split)

    def on_test_epoch_end(self) -> None:
        for split in EVAL_SPLITS:
            self._log_epoch(split)
        # a confusion matrix is not a scalar: kept for the report files, not sent through self.log
        self.test_confusion = self.confusion.compute().cpu()
        self.confusion.reset()

    # --- checkpoints -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The RNG state (dropout, augmentation), so that a resumed run draws what the uninterrupted one would; and the
        curves so far, with this epoch's training figures where its end has not logged them yet."""
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if self.optimizer_factory is not None:  # a resumed run must continue with the same optimizer's state
            checkpoint["optimizer"] = optimizer_name(self.optimizer_factory)
        history = {key: dict(values) for key, values in self.history.items()}
        stats = self.stats["train_"]
        if stats.update_count and self.current_epoch not in history.get("train/loss", {}):
            loss, acc = stats.compute()
            for key, value in (("train/loss", loss), ("train/acc", acc), ("train/err", 1 - acc)):
                history.setdefault(key, {})[self.current_epoch] = float(value)
        checkpoint["history"] = history

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])
        for key, values in checkpoint.get("history", {}).items():  # testing the best checkpoint keeps the later epochs
            self.history[key] = {**values, **self.history.get(key, {})}
        weights = checkpoint.get("state_dict", {})
        for key, value in self.stats["train_"].state_dict(prefix="stats.train_.").items():
            weights.setdefault(key, torch.zeros_like(value))  # a checkpoint from before they were kept

    # --- optimisation ------------------------------------------------------------------------------
    def _param_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters; C and FC weights in a group of their own for an optimizer that treats them apart
        (`optim=muon`), batch-norm shifts in another when `bn_bias_lr_scale` is not 1."""
        trainable = [p for p in self.parameters() if p.requires_grad]
        matrices = {id(p) for p in self.net.matrix_weights()} if wants_matrices(self.optimizer_factory) else set()
        shifts: set[int] = set()
        if self.options.bn_bias_lr_scale != 1:
            norms = [m.bias for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
            shifts = {id(p) for p in norms if p.requires_grad}
        groups = [{"params": [p for p in trainable if id(p) in matrices], MATRIX: True},
                  {"params": [p for p in trainable if id(p) not in matrices | shifts]},
                  {"params": [p for p in trainable if id(p) in shifts], "lr_scale": self.options.bn_bias_lr_scale}]
        return [g for g in groups if g["params"]]

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """`trainer.gradient_clip_val` on the network's own gradients: Lightning clips the optimizer's parameters, and
        Muon's are 2-D views whose gradients it sets only in its step."""
        if gradient_clip_val:
            grads = [p for p in self.parameters() if p.grad is not None]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(grads, gradient_clip_val, foreach=True)
            else:
                torch.nn.utils.clip_grad_norm_(grads, gradient_clip_val, foreach=True)

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ConfigError("no optimizer configured; choose one with optim=adam|sgd|rmsprop|gd.")
        factory, schedule = self.optimizer_factory, self.scheduler_factory
        per_step = [f for f in (factory, schedule) if f is not None and takes_total_steps(f)]
        total = int(self.trainer.estimated_stepping_batches) if per_step and self._trainer is not None else 0
        steps = {"total_steps": total} if factory in per_step else {}  # Muon's momentum warm-up
        optimizer = factory(params=self._param_groups(), **fused_kwargs(factory, self.device),
                            **decay_kwargs(factory, self.options.reg), **steps)
        scale = self.options.bn_bias_lr_scale
        for group in optimizer.param_groups:
            if group.get("lr_scale", 1.0) != 1.0:  # airbench: the product lr x weight decay stays the same
                group["lr"] *= scale
                group["weight_decay"] = group.get("weight_decay", 0.0) / scale
        if self.scheduler_factory is None:
            return optimizer
        if schedule in per_step:
            schedule = {"scheduler": self.scheduler_factory(optimizer=optimizer, total_steps=total), "interval": "step"}
        else:
            schedule = {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}
