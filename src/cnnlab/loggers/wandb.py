"""logger=wandb: Weights & Biases (offline with WANDB_MODE=offline): the config, figures, report table and files; one
run per job, in a group per sweep, each closed with `wandb.finish()` so that the jobs of a sweep never merge."""

from pathlib import Path
from typing import Any

from cnnlab.loggers import Adapter


class WandB(Adapter):
    target = "pytorch_lightning.loggers.WandbLogger"
    package = "wandb"

    def check(self, name: str, entry: dict[str, Any], run_dir: Path, sweep: tuple[Path, str] | None) -> None:
        if sweep is not None:
            entry.update(group=sweep[0].name, name=sweep[1])
        super().check(name, entry, run_dir, sweep)

    def send_config(self, logger, config: dict[str, Any]) -> None:
        logger.log_hyperparams(config)

    def send_report(self, logger, report, images, texts, files, step) -> None:
        import io

        from PIL import Image

        for tag, png in images.items():
            logger.log_image(key=tag, images=[Image.open(io.BytesIO(png))])
        logger.log_text(key="classification_report", columns=["report"], data=[[report.per_class_text]])
        for path in files:
            logger.experiment.save(str(path), base_path=str(path.parent), policy="now")

    def finish(self, logger) -> None:
        import wandb

        wandb.finish()
