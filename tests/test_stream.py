"""Streamed data sets: `src/prepare.py` writes litdata shards, `data=stream` trains from them (real runs, real
shards): the same splits and pixels as the in-memory path, every test image counted once, resumable mid-epoch, and
bad shards refused in one sentence before training."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cnnlab.data import make_datamodule
from cnnlab.errors import ConfigError, DataError
from tests.conftest import ROOT, compose_train, run_script
from tests.data_files import image_label_counts, split_counts
from tests.test_folder import CLASSES, write_images

DIGITS_SPLITS = {"train": 1257, "val": 180, "test": 360}


@pytest.fixture(scope="module")
def digits_shards(tmp_path_factory):
    """The default data set (digits) written into shards by the real command."""
    root = tmp_path_factory.mktemp("shards")
    done = run_script("prepare.py", root / "run", f"out={root / 'digits'}")
    assert done.returncode == 0, done.output[-3000:]
    return root / "digits"


def _items(root, split):
    """(pixels, label) -> count, read back through the stream's own dataset and decoder."""
    dataset = make_datamodule({"family": "stream", "root": str(root)}, root)._dataset(split, shuffle=False)
    return image_label_counts(dataset[i][:2] for i in range(len(dataset)))


def test_shards_hold_the_in_memory_splits(digits_shards):
    meta = json.loads((digits_shards / "cnnlab.json").read_text())
    assert {k: meta["splits"][k]["images"] for k in DIGITS_SPLITS} == DIGITS_SPLITS
    assert meta["store"] == "pixels" and meta["input_shape"] == [1, 8, 8] and len(meta["class_names"]) == 10
    memory = make_datamodule(dict(compose_train().data), digits_shards)
    memory.setup()
    for split in DIGITS_SPLITS:
        assert _items(digits_shards, split) == split_counts(memory.splits[split]), split
    assert meta["mean"] == pytest.approx(memory.mean.flatten().tolist())


def test_train_from_shards_counts_every_test_image_once(train, digits_shards):
    run = train("data=stream", f"data.root={digits_shards}", "trainer.max_epochs=2", "data.batch_size=64")
    assert run.returncode == 0, run.output[-3000:]
    matrix = [line.split(",")[1:] for line in (run.dir / "confusion_matrix.csv").read_text().splitlines()[1:]]
    assert sum(int(v) for row in matrix for v in row) == 360
    assert run.results()["test/acc"] > 0.2  # learns: 10 classes, chance is 0.1
    saved = torch.load(run.dir / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]["data_info"]
    assert saved["name"] == "digits" and saved["shards"] == str(digits_shards)
    # predict needs no shards: the checkpoint carries the classes and the normalisation
    image = run.dir / "digit.png"
    Image.fromarray((torch.rand(8, 8) * 255).byte().numpy()).save(image)
    predicted = train(f"ckpt_path={run.dir / 'checkpoints' / 'best.ckpt'}", f"input={image}",
                      f"output={run.dir / 'p.csv'}", script="predict.py")
    assert predicted.returncode == 0, predicted.output[-3000:]
    assert (run.dir / "p.csv").read_text().splitlines()[0].startswith("file,predicted,probability,p_0")


def test_folder_shards_keep_the_files_and_decode_to_the_same_pixels(tmp_path):
    from cnnlab.prepare import prepare

    write_images(tmp_path / "pets", n_per_class=12, size=(6, 6))
    cfg = compose_train()  # any root config with paths; prepare's own keys added below
    from omegaconf import OmegaConf, open_dict

    with open_dict(cfg):
        cfg.data = OmegaConf.create({"family": "folder", "root": str(tmp_path / "pets"), "workers": 1})
        cfg.out, cfg.store, cfg.workers, cfg.chunk_mb = str(tmp_path / "shards"), "auto", 2, 1
    prepare(cfg)
    meta = json.loads((tmp_path / "shards" / "cnnlab.json").read_text())
    assert meta["store"] == "encoded" and meta["class_names"] == list(CLASSES)
    folder = make_datamodule({"family": "folder", "root": str(tmp_path / "pets"), "workers": 1, "cache": False},
                             tmp_path)
    folder.setup()
    for split in ("train", "val", "test"):
        assert _items(tmp_path / "shards", split) == split_counts(folder.splits[split]), split
    assert meta["mean"] == pytest.approx(folder.mean.flatten().tolist(), abs=1e-6)
    assert meta["std"] == pytest.approx(folder.std.flatten().tolist(), abs=1e-6)
    chunk = next((tmp_path / "shards" / "train").glob("chunk-*.bin")).read_bytes()
    png = (tmp_path / "pets" / "cat" / "000.png").read_bytes()
    assert png in chunk  # the file's own bytes, not decoded pixels
    with open_dict(cfg):
        cfg.out = str(tmp_path / "again")
    prepare(cfg)  # the same input gives the same chunks (so the same training order), whichever worker is faster
    for split in ("train", "val", "test", "train_eval"):
        chunks = [sorted((tmp_path / out / split).glob("chunk-*.bin")) for out in ("shards", "again")]
        assert [p.read_bytes() for p in chunks[0]] == [p.read_bytes() for p in chunks[1]], split


def test_prepare_names_a_bad_image_and_never_replaces_other_files(tmp_path):
    from omegaconf import OmegaConf, open_dict

    from cnnlab.prepare import prepare

    write_images(tmp_path / "pets", n_per_class=6, size=(6, 6))
    (tmp_path / "pets" / "dog" / "zz.jpg").write_text("not an image")
    cfg = compose_train()
    with open_dict(cfg):
        cfg.data = OmegaConf.create({"family": "folder", "root": str(tmp_path / "pets"), "workers": 1,
                                     "image_size": 6, "channels": 3})
        cfg.out, cfg.store, cfg.workers, cfg.chunk_mb = str(tmp_path / "shards"), "auto", 1, 1
    with pytest.raises(DataError, match=r"zz.jpg: not a readable image .*data.skip_bad_images=true"):
        prepare(cfg)
    assert not (tmp_path / "shards" / "cnnlab.json").exists()  # nothing half-written is left to be streamed
    with open_dict(cfg):
        cfg.data.skip_bad_images = True
    prepare(cfg)
    meta = json.loads((tmp_path / "shards" / "cnnlab.json").read_text())
    assert sum(meta["splits"][s]["images"] for s in ("train", "val", "test")) == 18 and len(meta["skipped"]) == 1
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with open_dict(cfg):
        cfg.out = str(tmp_path / "mine")
    with pytest.raises(ConfigError, match="not a shards folder"):
        prepare(cfg)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_bad_shards_are_one_sentence_before_training(digits_shards, tmp_path):
    def error(root, **options):
        with pytest.raises(DataError) as info:
            make_datamodule({"family": "stream", "root": str(root), **options}, tmp_path)
        return str(info.value)

    assert "does not exist" in error(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert "is empty" in error(tmp_path / "empty") and "prepare.py" in error(tmp_path / "empty")
    cut = _copy(digits_shards, tmp_path / "cut")
    chunk = sorted((cut / "train").glob("chunk-*.bin"))[0]
    chunk.write_bytes(chunk.read_bytes()[:100])
    message = error(cut)
    assert str(chunk) in message and "100 bytes" in message and "cut short" in message
    lost = _copy(digits_shards, tmp_path / "lost")
    (lost / "val" / "index.json").unlink()
    assert f"{lost / 'val' / 'index.json'} is missing" in error(lost)
    assert "data.class_names" in error(digits_shards, class_names=["cat", "dog"])
    assert "8x8 images" in error(digits_shards, image_size=32)
    too_few = make_datamodule({"family": "stream", "root": str(digits_shards), "batch_size": 1000}, tmp_path)
    with pytest.raises(DataError, match=r"1,257 images, fewer than one batch .* \(1000 x 1 x 2\)"):
        too_few.train_dataloader()
    # through the command line: exit 2, one line, nothing trained
    run = run_script("train.py", tmp_path / "run", "data=stream", f"data.root={cut}")
    assert run.returncode == 2 and "Traceback" not in run.output and str(chunk) in run.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


KILL = ("trainer.deterministic=true", "trainer.max_epochs=2", "arch=small", "checkpoint_every_n_steps=5",
        "callbacks.model_checkpoint.monitor=null", "data.batch_size=64")


def test_killed_stream_run_resumes_mid_epoch_with_the_same_result(digits_shards, tmp_path, monkeypatch):
    """The loader's position is in the checkpoint: the resumed run sees the rest of the interrupted epoch."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    stream = ("data=stream", f"data.root={digits_shards}", *KILL)
    whole = run_script("train.py", tmp_path / "whole", *stream)
    assert whole.returncode == 0, whole.output[-3000:]
    killed = run_script("train.py", tmp_path / "killed", *stream, "+callbacks.kill._target_=tests.faults.KillAtStep",
                        "+callbacks.kill.step=27")
    assert killed.returncode == -9
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    # 19 full batches per epoch (the last partial batch is dropped): step 25 is 6 batches into the second epoch
    assert saved["global_step"] == 25 and saved["epoch"] == 1
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["num_samples_yielded"] == 6 * 64
    resumed = run_script("train.py", tmp_path / "resumed", *stream, f"ckpt_path={last}")
    assert resumed.returncode == 0, resumed.output[-3000:]
    for key in ("test/acc", "test/loss", "val/acc", "train_eval/loss"):
        assert resumed.results()[key] == pytest.approx(whole.results()[key], abs=1e-6), key


def test_folder_too_large_for_memory_is_refused_before_decoding(tmp_path):
    write_images(tmp_path / "pets", n_per_class=4, size=(6, 6))
    dm = make_datamodule({"family": "folder", "root": str(tmp_path / "pets"), "workers": 1,
                          "max_memory_gb": 1e-6}, tmp_path)
    with pytest.raises(DataError) as info:
        dm.setup()
    message = str(info.value)
    assert "12 images of 3x6x6 take" in message and "data.max_memory_gb=1e-06 GiB" in message
    assert "python src/prepare.py data=folder" in message and "data=stream" in message
    assert not (tmp_path / "pets" / ".cnnlab_cache").exists()  # nothing was decoded
    with pytest.raises(ConfigError, match="data.max_memory_gb = -1"):
        make_datamodule({"family": "folder", "root": str(tmp_path / "pets"), "max_memory_gb": -1}, tmp_path)


def test_prepare_refuses_a_stream_no_out_and_bad_options(digits_shards):
    from omegaconf import OmegaConf, open_dict

    from cnnlab.prepare import prepare

    cfg = compose_train()
    with open_dict(cfg):
        cfg.data = OmegaConf.create({"family": "stream", "root": str(digits_shards)})
        cfg.out = str(digits_shards.parent / "again")
    with pytest.raises(ConfigError, match="data=stream reads shards"):
        prepare(cfg)
    with open_dict(cfg):
        cfg.out = "???"
    with pytest.raises(ConfigError, match="needs out=FOLDER"):
        prepare(cfg)
    for key, value, message in (("store", "zip", "store = 'zip'; expected auto"),
                                ("store", "encoded", "store=encoded keeps image files as found"),
                                ("chunk_mb", 0, "chunk_mb = 0; expected a positive number"),
                                ("workers", 0, "workers = 0; expected a positive integer or null")):
        bad = compose_train()
        with open_dict(bad):
            bad.data = OmegaConf.create({"family": "digits"})
            bad.out, bad.store, bad.workers, bad.chunk_mb = str(digits_shards.parent / "x"), "auto", 1, 1
            bad[key] = value
        with pytest.raises(ConfigError, match=message):
            prepare(bad)

