"""Export a checkpoint to run without cnnlab: `python src/export.py ckpt_path=<run>/checkpoints/best.ckpt`."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
from cnnlab.cli import run


def main(cfg) -> None:
    from cnnlab.deploy import check_export

    options, out = check_export(cfg)  # before the model is loaded
    from cnnlab.deploy import export

    export(options, out)



if __name__ == "__main__":
    run("export", main)
