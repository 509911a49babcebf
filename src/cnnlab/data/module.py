"""The LightningDataModule of every run: a source (images in memory, or streamed from shards) under one batching
side (augmentation and normalisation on the device, batch sizes, the test split after every epoch)."""

import pytorch_lightning as pl
import torch

from cnnlab.data.batching import Batching
from cnnlab.data.info import DataInfo
from cnnlab.data.options import DataOptions


class ImageData(pl.LightningDataModule):
    def __init__(self, source, options: DataOptions):
        super().__init__()
        self.source, self.options = source, options
        self._batching: Batching | None = None
        self._total_steps: int | None = None

    # --- what the model needs to know -------------------------------------------------------------------
    @property
    def info(self) -> DataInfo:
        return self.source.info

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def class_names(self) -> list[str]:
        return list(self.source.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.source.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.source.input_shape)

    @property
    def batch_size(self) -> int:
        return self.options.batch_size

    @property
    def splits(self) -> dict:
        """The train, val and test splits of images held in memory (read on first use)."""
        return dict(self.source.open().items())

    @property
    def batching(self) -> Batching:
        if self._batching is None:
            info = self.info
            self._batching = Batching(info.mean, info.std, self.options.augment)
        return self._batching

    # --- Lightning's hooks ------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        self.source.open()

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _loader(self, split: str, shuffle: bool):
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        size = self.options.batch_size if shuffle else self.options.eval_batch_size
        return self.source.loader(split, size, shuffle, rank, world, self._device())

    def train_dataloader(self):
        loader = self._loader("train", shuffle=True)
        if self.trainer is not None and self.trainer.fit_loop.restarting and hasattr(loader.sampler, "resume_after"):
            # Lightning restores the count of batches done in the interrupted epoch but replays a plain loader from
            # its start (and sets the epoch only after the first pass begins); skipping them in that epoch's order
            # makes a resumed run see exactly the uninterrupted run's data. A streamed loader resumes by itself.
            loader.sampler.set_epoch(self.trainer.current_epoch)
            loader.sampler.resume_after(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return loader

    def val_dataloader(self):
        """The validation split; with `monitor_test`, the test split too (logged as `test_epoch/...` after every
        epoch, for time-to-accuracy curves; the best checkpoint is still chosen by validation)."""
        val = self._loader("val", shuffle=False)
        return [val, self._loader("test", shuffle=False)] if self.options.monitor_test else val

    def test_dataloader(self):
        """The test split, then the training set unaugmented (or `train_eval_size` of it): the seed reported both."""
        return [self._loader("test", shuffle=False), self._loader("train_eval", shuffle=False)]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """uint8 batch -> augmented (training only) and normalised floats; the image indices are dropped here."""
        x, y, index = batch
        training = self.trainer is not None and self.trainer.training
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        parity = self.source.flip_parity if training and self.options.augment.flip == "alternate" else None
        progress = self._progress() if training and self.options.augment.sizes else 0.0
        return self.batching(x, index, training, epoch, parity, progress), y

    def _progress(self) -> float:
        """The fraction of the run's optimizer steps done (Lightning's estimate of the whole, read once)."""
        if self._total_steps is None:
            self._total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        return self.trainer.global_step / self._total_steps

    def train_sample(self, n: int) -> torch.Tensor:
        """The first `n` training images as the network sees them in training, but not augmented: for
        initialisations fitted to data (`init: whiten`)."""
        self.setup("fit")
        return self.batching.normalise(self.source.sample(n).float().div_(255))
