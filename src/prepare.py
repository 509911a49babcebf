"""Write a data set into shards once, to stream it: `python src/prepare.py data=folder data.root=PATH out=SHARDS`,
then `python src/train.py data=stream data.root=SHARDS` (see README.md)."""

import cnnlab  # noqa: F401  (first: time/startup_s counts from this line)

# isort: split
from cnnlab.cli import run


def main(cfg) -> None:
    from cnnlab.prepare import check_prepare

    plan = check_prepare(cfg)
    from cnnlab.prepare import prepare

    prepare(plan)



if __name__ == "__main__":
    run("prepare", main)
