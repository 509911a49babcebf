"""Export a checkpoint to run without cnnlab: `python src/export.py ckpt_path=<run>/checkpoints/best.ckpt`."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from cnnlab.checks.deploy import check_export

    options, out = check_export(cfg)  # before the model is loaded
    from cnnlab.deploy import export

    export(options, out)


if __name__ == "__main__":
    set_root("export")
    main()
