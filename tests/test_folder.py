"""`data=folder`: your own images, one folder per class, written by the tests as real image files."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.checks.errors import ConfigError, DataError
from cnnlab.data import make_datamodule

CLASSES = ("cat", "dog", "fox")
RNG = np.random.default_rng(0)


def write_images(folder, n_per_class=10, size=(8, 8), mode="RGB", suffix=".png", classes=CLASSES):
    """n images per class folder; pixel values encode class and index, so the tests can check them."""
    arrays = {}
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            shape = (*size, 3) if mode == "RGB" else size
            array = RNG.integers(0, 256, shape, dtype=np.uint8)
            array.flat[0] = 10 * c + i  # a signature pixel
            path = folder / name / f"{i:03d}{suffix}"
            Image.fromarray(array, mode="RGB" if mode == "RGB" else "L").save(path)
            arrays[path] = array
    return arrays


def folder_module(root, **options):
    options = {"family": "folder", "root": str(root), "workers": 1, **options}
    dm = make_datamodule(options, root.parent / "unused-data-dir")
    dm.setup()
    return dm


def sizes(dm):
    return {k: len(v) for k, v in dm.splits.items()}


def test_single_folder_is_split_by_stratified_seeded_fractions(tmp_path):
    arrays = write_images(tmp_path / "pets", n_per_class=20)
    dm = folder_module(tmp_path / "pets", val_fraction=0.1, test_fraction=0.2)
    assert dm.class_names == list(CLASSES) and dm.input_shape == (3, 8, 8)
    assert sizes(dm) == {"train": 42, "val": 6, "test": 12}
    assert torch.bincount(dm.splits["test"].y).tolist() == [4, 4, 4]  # stratified
    every = torch.cat([dm.splits[s].x for s in ("train", "val", "test")])
    originals = {tuple(a.transpose(2, 0, 1).flatten().tolist()) for a in arrays.values()}
    assert {tuple(x.flatten().tolist()) for x in every} == originals  # every image exactly, once
    again = folder_module(tmp_path / "pets", val_fraction=0.1, test_fraction=0.2)
    assert torch.equal(again.splits["test"].x, dm.splits["test"].x)  # seeded


def test_split_folders_and_a_missing_val_carved_from_train(tmp_path):
    write_images(tmp_path / "set" / "train", n_per_class=12)
    write_images(tmp_path / "set" / "test", n_per_class=3)
    dm = folder_module(tmp_path / "set", val_fraction=0.1)
    assert sizes(dm) == {"train": 32, "val": 4, "test": 9}  # val: 10% of all 45 images, from train
    write_images(tmp_path / "set" / "val", n_per_class=2)
    assert sizes(folder_module(tmp_path / "set", cache=False)) == {"train": 36, "val": 6, "test": 9}


def test_formats_modes_sizes_and_channels(tmp_path):
    root = tmp_path / "mixed"
    for name in CLASSES:
        (root / name).mkdir(parents=True)
        colour = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(colour).save(root / name / "a.jpg", quality=95)
        Image.fromarray(colour).save(root / name / "b.bmp")
        Image.fromarray(colour).save(root / name / "c.webp", lossless=True)
        Image.fromarray(colour).convert("RGBA").save(root / name / "d.png")
        frames = [Image.fromarray(colour), Image.fromarray(255 - colour)]
        frames[0].save(root / name / "e.gif", save_all=True, append_images=frames[1:])
        Image.fromarray(colour[..., 0]).save(root / name / "f.png")  # grey
        (root / name / "notes.txt").write_text("not an image: ignored by its suffix")
    with pytest.raises(DataError, match=r"15 colour images.*data.channels=3"):
        folder_module(root)  # 3 grey ones among them
    dm = folder_module(root, channels=3, val_fraction=0.2, test_fraction=0.2)
    assert dm.input_shape == (3, 8, 8) and sum(sizes(dm).values()) == 18
    grey = folder_module(root, channels=1, val_fraction=0.2, test_fraction=0.2, cache=False)
    assert grey.input_shape == (1, 8, 8)
    Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / "cat" / "big.png")
    with pytest.raises(DataError) as info:
        folder_module(root, channels=3, cache=False)
    assert "8x8: 18 images" in str(info.value) and "12x10: 1 images" in str(info.value)
    assert "data.image_size" in str(info.value)
    resized = folder_module(root, channels=3, image_size=[6, 5], cache=False, val_fraction=0.2, test_fraction=0.2)
    assert resized.input_shape == (3, 6, 5) and resized.splits["train"].x.shape[1:] == (3, 6, 5)


def test_parallel_decoding_gives_the_same_pixels(tmp_path):
    write_images(tmp_path / "pets", n_per_class=30, suffix=".jpg")
    one = folder_module(tmp_path / "pets", cache=False)
    two = folder_module(tmp_path / "pets", cache=False, workers=2)
    for split in ("train", "val", "test"):
        assert torch.equal(one.splits[split].x, two.splits[split].x)


def test_cache_is_used_invalidated_and_never_trusted_blindly(tmp_path, caplog):
    root = tmp_path / "pets"
    write_images(root)
    first = folder_module(root)
    cache_files = list((root / ".cnnlab_cache").glob("*.npz"))
    assert len(cache_files) == 1
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        second = folder_module(root)
    assert "from the cache" in caplog.text and torch.equal(first.splits["train"].x, second.splits["train"].x)
    # a changed file: rebuilt, and the new pixels are read
    changed = root / "dog" / "003.png"
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        third = folder_module(root)
    assert "made for other files" in caplog.text
    assert any(torch.equal(x, torch.full((3, 8, 8), 7, dtype=torch.uint8)) for s in third.splits.values() for x in s.x)
    # corrupt: rebuilt with a warning, not trusted
    cache_files[0].write_bytes(b"garbage")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        folder_module(root)
    assert "unreadable image cache" in caplog.text
    # a cache that would need unpickling (an object array) is refused, never unpickled
    np.savez(
        cache_files[0],
        x=np.array([object()], dtype=object),
        ok=np.ones(1, bool),
        header=np.frombuffer(json.dumps({"version": 1}).encode(), np.uint8),
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        rebuilt = folder_module(root)
    assert "rebuilding" in caplog.text and rebuilt.splits["train"].x.dtype == torch.uint8


def test_mean_and_std_come_from_the_training_images(tmp_path):
    write_images(tmp_path / "pets")
    dm = folder_module(tmp_path / "pets")
    pixels = dm.splits["train"].x.float() / 255
    assert torch.allclose(torch.tensor(dm.info.mean), pixels.mean((0, 2, 3)))
    assert list(dm.info.std) == pytest.approx(pixels.std((0, 2, 3)).tolist(), rel=1e-5)
    given = folder_module(tmp_path / "pets", mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    assert given.info.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    "make, options, message",
    [
        (lambda r: None, {}, "does not exist or is not a folder"),
        (lambda r: r.mkdir(), {}, "holds no class folders"),
        (lambda r: write_images(r, classes=("cat",)), {}, "has one class folder (cat)"),
        (lambda r: (write_images(r), (r / "emu").mkdir()), {}, "emu holds no images"),
        (
            lambda r: (write_images(r / "train"), write_images(r / "test", classes=("cat", "dog", "owl"))),
            {},
            "only in train: ['fox']; only in test: ['owl']",
        ),
        (lambda r: write_images(r, n_per_class=2), {"val_fraction": 0.05}, "val_fraction = 0.05 of 6 images leaves"),
        (lambda r: write_images(r), {"val_fraction": 0.6, "test_fraction": 0.5}, "must leave images for training"),
        (lambda r: write_images(r), {"image_size": [0, 4]}, "data.image_size"),
        (lambda r: write_images(r), {"channels": 2}, "data.channels = 2"),
        (lambda r: (write_images(r), (r / "dog" / "x.jpg").write_bytes(b"no jpeg")), {}, "dog/x.jpg: not a readable"),
    ],
)
def test_bad_folders_are_one_sentence(tmp_path, make, options, message):
    root = tmp_path / "images"
    make(root)
    with pytest.raises((DataError, ConfigError)) as info:
        folder_module(root, **options)
    assert message in str(info.value)


def test_bad_images_are_named_or_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "pets"
    write_images(root)
    good = (root / "cat" / "001.png").read_bytes()
    (root / "cat" / "001.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "fox" / "zz.jpg").write_text("a text file called .jpg")
    with pytest.raises(DataError) as info:
        folder_module(root, image_size=8, channels=3)  # the header is skipped: found while decoding
    assert "not a readable image" in str(info.value) and "1 more such files" in str(info.value)
    assert "data.skip_bad_images=true" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        dm = folder_module(root, skip_bad_images=True, cache=False)
    assert sum(sizes(dm).values()) == 29 and "skipped 2 unreadable image(s)" in caplog.text


def test_train_eval_predict_and_export_from_a_folder(train, fit, tmp_path):
    """A user's photos: train, evaluate, predict on new images of another size, export; class names travel."""
    write_images(tmp_path / "photos", n_per_class=12, size=(10, 10))
    run = fit("data=folder", f"data.root={tmp_path / 'photos'}", "arch=small", "trainer.max_epochs=2")
    report = json.loads((run.dir / "classification_report.json").read_text())
    assert set(CLASSES) <= set(report)
    ckpt = run.dir / "checkpoints" / "best.ckpt"
    saved = torch.load(ckpt, weights_only=True)["hyper_parameters"]["data_info"]
    assert saved["class_names"] == list(CLASSES) and saved["input_shape"] == [3, 10, 10]
    assert saved["mean"] != [0.5, 0.5, 0.5]  # computed from the training images
    from tests.test_train_cli import eval_in_process

    evaluated = eval_in_process(tmp_path / "eval", f"ckpt_path={ckpt}")
    assert evaluated["test/acc"] == pytest.approx(run.results()["test/acc"], abs=1e-6)
    new = tmp_path / "new"
    new.mkdir()
    for i in range(3):
        Image.fromarray(RNG.integers(0, 256, (30, 24), dtype=np.uint8)).save(new / f"{i}.png")  # grey, larger
    predicted = train(f"ckpt_path={ckpt}", f"input={new}", f"output={tmp_path / 'p.csv'}", script="predict.py")
    assert predicted.returncode == 0, predicted.output[-3000:]  # the command line itself, once
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("file,predicted,probability,p_cat,p_dog,p_fox")
    onnx = pytest.importorskip("onnx")
    from cnnlab.compose import compose
    from cnnlab.deploy import check_export, export

    model_file = export(
        *check_export(compose("export", f"ckpt_path={ckpt}", "format=onnx", f"paths.output_dir={tmp_path / 'export'}"))
    )
    meta = {p.key: p.value for p in onnx.load(str(model_file)).metadata_props}
    assert json.loads(meta["class_names"]) == list(CLASSES)
