"""logger=wandb: Weights & Biases (offline with WANDB_MODE=offline): the config, figures, report table and files; one
run per job, in a group per sweep, each closed with `wandb.finish()` so that the jobs of a sweep never merge."""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError
from cnnlab.loggers import Adapter


class WandB(Adapter):
    target = "pytorch_lightning.loggers.WandbLogger"
    package = "wandb"

    def check(self, name: str, entry: dict[str, Any], run_dir: Path, sweep: tuple[Path, str] | None) -> None:
        if sweep is not None:
            entry.update(group=sweep[0].name, name=sweep[1])
        super().check(name, entry, run_dir, sweep)

    def ready(self, name: str, entry: Mapping[str, Any]) -> None:
        """Online, W&B needs an account: without one every job would stop in wandb.init, one by one."""
        super().ready(name, entry)
        if entry.get("offline") or os.environ.get("WANDB_MODE") in ("offline", "dryrun", "disabled") or \
                os.environ.get("WANDB_API_KEY"):
            return
        import wandb

        try:
            wandb.login(verify=False)  # a key from `wandb login` (netrc), or its prompt on a terminal
        except wandb.errors.UsageError:
            raise OptionError(f"logger={name} logs to W&B online, but no W&B account is configured here (no "
                              "WANDB_API_KEY, no `wandb login`); run `wandb login`, or log offline with "
                              "WANDB_MODE=offline and upload later with `wandb sync`.") from None

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
