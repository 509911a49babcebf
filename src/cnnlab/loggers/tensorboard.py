"""logger=tensorboard: scalars per epoch, the config in the HParams view, the report's figures and texts."""

import os
from pathlib import Path
from textwrap import indent
from typing import Any

from cnnlab.loggers import Adapter


class TensorBoard(Adapter):
    target = "pytorch_lightning.loggers.TensorBoardLogger"
    package = extra = "tensorboard"

    def check(self, name: str, entry: dict[str, Any], run_dir: Path, sweep: tuple[Path, str] | None) -> None:
        if sweep is not None:  # `tensorboard --logdir <sweep>/tensorboard` lists the jobs by their overrides
            entry.update(save_dir=str(sweep[0] / "tensorboard"), name=sweep[1].replace(os.sep, "_"))
        super().check(name, entry, run_dir, sweep)

    def send_config(self, logger, config: dict[str, Any]) -> None:
        """The config in TensorBoard's HParams view, with the metrics its table shows: the view reads each metric's
        last value from the run's own scalars, so the final validation and test figures appear once logged."""
        from torch.utils.tensorboard.summary import hparams

        from cnnlab.loggers.flat import flat
        from cnnlab.sweep import METRICS

        writer = logger.experiment._get_file_writer()  # what Lightning's own log_hyperparams writes to
        for summary in hparams(flat(config), {metric: 0.0 for metric in METRICS}):
            writer.add_summary(summary)

    def send_report(self, logger, report, images, texts, files, step) -> None:
        import io

        import numpy as np
        from PIL import Image

        for tag, png in images.items():
            picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            logger.experiment.add_image(tag, picture, step, dataformats="HWC")
        for tag, text in texts.items():  # indented: TensorBoard renders text as Markdown
            logger.experiment.add_text(tag, indent(text, "    "), step)
        logger.experiment.flush()
