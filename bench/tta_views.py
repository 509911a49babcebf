"""What each test-time augmentation adds, measured on the validation split of a finished run (never the test split:
the views are chosen like any other setting).

    python bench/tta_views.py outputs/train/<run>/checkpoints/best.ckpt --data-dir DATA [--json OUT]

One trained checkpoint, its own data set and splits (from the checkpoint), evaluated with model.tta = null, [flip],
[flip, translate] and [flip, crops]: validation accuracy and the seconds each took on this machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

VIEWS = {"none": (), "flip": ("flip",), "flip+translate": ("flip", "translate"), "flip+crops": ("flip", "crops")}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA_DIR", "data"),
                        help="where the data set's files are (as train.py's CNNLAB_DATA_DIR)")
    parser.add_argument("--json", help="write the table here as JSON")
    args = parser.parse_args(argv)

    import pytorch_lightning as pl

    from cnnlab.data import make_datamodule
    from cnnlab.data.family import read_data
    from cnnlab.inference import read_cnnlab_checkpoint
    from cnnlab.model.module import LayerListClassifier
    from cnnlab.run.lightning import quiet_lightning

    quiet_lightning()
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)

    _, saved = read_cnnlab_checkpoint(args.ckpt)
    datamodule = make_datamodule(read_data(dict(saved["data_info"]["config"])), args.data_dir)
    datamodule.setup("fit")
    datamodule.test_dataloader = datamodule.val_dataloader  # the test step (where the views vote) on validation
    model = LayerListClassifier.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=True)
    rows = {}
    for name, views in VIEWS.items():
        model.tta_views = views
        trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False)
        start = time.perf_counter()
        metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
        rows[name] = {"val_acc": round(float(metrics["test/acc"]), 4), "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name:16s} validation accuracy {rows[name]['val_acc']:.2%}  {rows[name]['seconds']:.1f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ckpt": args.ckpt, "views": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
