"""Predict classes for images: `python src/predict.py ckpt_path=<run>/checkpoints/best.ckpt input=images/`."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
from cnnlab.cli import run


def main(cfg) -> None:
    from cnnlab.deploy import check_predict

    options, out = check_predict(cfg)  # before the model is loaded
    from cnnlab.deploy import predict

    predict(options, out)



if __name__ == "__main__":
    run("predict", main)
