"""The LightningModule: a network built from a layer list, trained with cross-entropy on logits.

The seed's L2 penalty `reg * sum(||W||^2) / 2` over all weights and biases has gradient `reg * W`,
which is exactly the optimizer's (coupled) `weight_decay`; it is applied there, so no extra pass over
the parameters is spent per step and the logged loss is the data loss alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from cnnlab.errors import ConfigError
from cnnlab.layers import build_network
from cnnlab.schedules import is_per_step

EVAL_SPLITS = ("test", "train_eval")  # test dataloaders, in order: the test split, the training set unaugmented


def decay_kwargs(optimizer_factory: Callable, reg: float) -> dict[str, float]:
    """The seed's L2 penalty as the optimizer's weight_decay, unless the optimizer config sets its own."""
    if "weight_decay" in getattr(optimizer_factory, "keywords", {}):
        if reg:
            raise ConfigError("both model.reg and optim.weight_decay are set; the seed's L2 penalty is "
                              "model.reg, so set model.reg=0 to use optim.weight_decay instead.")
        return {}
    return {"weight_decay": reg}


class LayerListClassifier(pl.LightningModule):
    def __init__(
        self,
        layers: list[dict[str, Any]],
        data_info: dict[str, Any],
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        reg: float = 1e-3,
        label_smoothing: float = 0.0,
        tta_flip: bool = False,
        channels_last: bool = False,
        compile: bool | str = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        classes = len(data_info["class_names"])
        self.net = build_network(layers, tuple(data_info["input_shape"]), classes)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        # every metric is a torchmetrics state, reduced across ranks at a point all ranks reach together
        # (epoch-level self.log(sync_dist=True) syncs lazily, e.g. from rank 0's progress bar, and deadlocks DDP)
        splits = ("train", "val", *EVAL_SPLITS)
        self.accuracy = nn.ModuleDict({f"{s}_": MulticlassAccuracy(classes, average="micro") for s in splits})
        self.mean_loss = nn.ModuleDict({f"{s}_": MeanMetric() for s in splits})
        self.confusion = MulticlassConfusionMatrix(classes)
        self.test_confusion: torch.Tensor | None = None

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.hparams.compile and "_compiled" not in self.__dict__:
            backend = self.hparams.compile if isinstance(self.hparams.compile, str) else "inductor"
            # kept out of the module tree: checkpoints hold the plain network's weights (no _orig_mod. keys)
            self.__dict__["_compiled"] = torch.compile(self.net, backend=backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.__dict__.get("_compiled", self.net)(x)


    # --- steps -------------------------------------------------------------------------------------
    def _step(self, batch, split: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        if self.hparams.tta_flip and split not in ("train",):
            logits = (logits + self(x.flip(3))) / 2  # test-time augmentation: the mirror image votes too
        loss = self.criterion(logits, y)
        self.accuracy[f"{split}_"].update(logits.detach(), y)
        self.mean_loss[f"{split}_"].update(loss.detach(), weight=len(y))
        if split == "test":
            self.confusion.update(logits.detach(), y)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._step(batch, EVAL_SPLITS[dataloader_idx])

    def _log_epoch(self, split: str) -> None:
        metric, loss = self.accuracy[f"{split}_"], self.mean_loss[f"{split}_"]
        if metric.update_count == 0:
            return
        acc = metric.compute()
        self.log_dict({f"{split}/loss": loss.compute(), f"{split}/acc": acc, f"{split}/err": 1 - acc},
                      prog_bar=split == "val", add_dataloader_idx=False)
        metric.reset()
        loss.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        for split in EVAL_SPLITS:
            self._log_epoch(split)
        # a confusion matrix is not a scalar: kept for the report files, not sent through self.log
        self.test_confusion = self.confusion.compute().cpu()
        self.confusion.reset()

    # --- checkpoints -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The RNG state (dropout, augmentation), so that a resumed run draws what the uninterrupted one would."""
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])

    # --- optimisation ------------------------------------------------------------------------------
    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ConfigError("no optimizer configured; choose one with optim=adam|sgd|rmsprop|gd.")
        optimizer = self.optimizer_factory(params=self.parameters(),
                                           **decay_kwargs(self.optimizer_factory, self.hparams.reg))
        if self.scheduler_factory is None:
            return optimizer
        if is_per_step(self.scheduler_factory):
            total = int(self.trainer.estimated_stepping_batches)
            schedule = {"scheduler": self.scheduler_factory(optimizer=optimizer, total_steps=total), "interval": "step"}
        else:
            schedule = {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": schedule}
