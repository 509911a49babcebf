"""Predict classes for images: `python src/predict.py ckpt_path=<run>/checkpoints/best.ckpt input=images/`."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
import hydra
from omegaconf import DictConfig

from cnnlab.cli import CONFIG_DIR, friendly_errors, set_root


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
@friendly_errors
def main(cfg: DictConfig) -> None:
    from cnnlab.checks.deploy import check_predict

    options, out = check_predict(cfg)  # before the model is loaded
    from cnnlab.deploy import predict

    predict(options, out)


if __name__ == "__main__":
    set_root("predict")
    main()
