"""Callbacks that observe a real `src/train.py` run from inside, loaded through the config
(`+callbacks.probe._target_=tests.probes.<Name>`, with the repository on PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl


class RecordTrainImages(pl.Callback):
    """Appends `<epoch> <image index>` for every training image a rank is given to `<folder>/rank<global rank>.txt`."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_fit_start(self, trainer, pl_module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        datamodule, path = trainer.datamodule, self.folder / f"rank{trainer.global_rank}.txt"
        transfer = datamodule.on_after_batch_transfer

        def record(batch, dataloader_idx):
            if trainer.training:
                with open(path, "a") as f:
                    f.writelines(f"{trainer.current_epoch} {i}\n" for i in batch[2].tolist())
            return transfer(batch, dataloader_idx)

        datamodule.on_after_batch_transfer = record


class RecordVisibleDevices(pl.Callback):
    """Writes the job's CUDA_VISIBLE_DEVICES and its process id to `<folder>/devices.txt` of the run."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_fit_start(self, trainer, pl_module) -> None:
        (self.folder / "devices.txt").write_text(f"{os.environ.get('CUDA_VISIBLE_DEVICES')} {os.getpid()}\n")


class WaitFor(pl.Callback):
    """Holds training at its start until `<path>` exists, after a line in `<path>.waiting`: a trial that is surely
    training when a test stops it, however fast the machine."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module) -> None:
        import time

        with open(f"{self.path}.waiting", "a") as f:
            f.write(f"{os.getpid()}\n")
        while not self.path.exists():
            time.sleep(0.05)
