"""How fast `data=folder` reads an image folder: the first run (decoding every file) and the cached run.

    python bench/folder_decode.py --root DATA/cifar10-jpeg      # train/ and test/ with class folders

Each figure is a fresh process (as a user's run is), timing the data module's setup: the folder scan, header
probe (when the size is not given), decoding with Pillow on `--workers` processes, and the cache. Also timed in
one process: decoding the same files with torchvision.io instead of Pillow, on one core, for the choice of
decoder. Memory: the bytes of the uint8 arrays held, against what a float32 copy would hold.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ONE_RUN = """
import json, resource, sys, time
start = time.perf_counter()
from cnnlab.data import make_datamodule
imported = time.perf_counter()
dm = make_datamodule(json.loads(sys.argv[1]), "unused")
dm.setup()
done = time.perf_counter()
held = sum(s.x.numel() * s.x.element_size() for s in dm.splits.values())
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"setup_s": done - imported, "import_s": imported - start, "uint8_bytes": held,
                  "images": sum(len(s) for s in dm.splits.values()), "max_rss_mb": rss_mb}))
"""


def one_run(options: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", ONE_RUN, json.dumps(options)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def decoder_rates(root: Path, n: int) -> dict[str, float]:
    """Images per second on one core: Pillow (cnnlab's) against torchvision.io.decode_image."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_image, read_file

    files = sorted(root.rglob("*.jpg"))[:n]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        for f in files:
            with Image.open(f) as img:
                np.asarray(img.convert("RGB"))
        pillow = len(files) / (time.perf_counter() - start)
        start = time.perf_counter()
        for f in files:
            decode_image(read_file(str(f)), mode=ImageReadMode.RGB)
        tv = len(files) / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)  # a caller in this process (the tests) keeps its arithmetic
    return {"pillow_img_s": pillow, "torchvision_io_img_s": tv}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--decoder-sample", type=int, default=5000)
    args = parser.parse_args(argv)
    record: dict = {"root": str(args.root)}
    with tempfile.TemporaryDirectory() as cache:
        for workers in args.workers:
            shutil.rmtree(cache, ignore_errors=True)
            options = {"family": "folder", "root": str(args.root), "cache_dir": cache, "workers": workers}
            first = one_run(options)
            cached = one_run(options)
            record[f"workers_{workers}"] = {"first": first, "cached": cached}
            print(f"workers={workers}: first run {first['setup_s']:.1f} s for {first['images']:,} images, cached "
                  f"run {cached['setup_s']:.2f} s; uint8 arrays {first['uint8_bytes'] / 1e6:,.0f} MB (a float32 "
                  f"copy: {4 * first['uint8_bytes'] / 1e6:,.0f} MB); peak RSS {first['max_rss_mb']:,.0f} MB",
                  flush=True)
    rates = decoder_rates(args.root, args.decoder_sample)
    record["decoders_one_core"] = rates
    print(f"one core: Pillow {rates['pillow_img_s']:,.0f} img/s, torchvision.io {rates['torchvision_io_img_s']:,.0f} "
          "img/s")
    return record


if __name__ == "__main__":
    main()
