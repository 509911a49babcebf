"""Streamed data sets: `src/prepare.py` writes litdata shards, `data=stream` trains from them (real runs, real
shards): the same splits and pixels as the in-memory path, every test image counted once, resumable mid-epoch, and
bad shards refused in one sentence before training."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from cnnlab.checks.errors import CnnlabError, ConfigError, DataError
from cnnlab.compose import compose
from cnnlab.data import make_datamodule
from cnnlab.prepare import check_prepare, prepare
from tests.conftest import ROOT, compose_train, run_script, train_in_process
from tests.data_files import image_label_counts, split_counts
from tests.test_deploy import Deploy
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
    from cnnlab.data.stream import Checked

    source = make_datamodule({"family": "stream", "root": str(root)}, root).source
    dataset = Checked(str(root / split), transform=source._decoder)
    return image_label_counts(dataset[i][:2] for i in range(len(dataset)))


def write_shards(out, *overrides):
    """What `python src/prepare.py <overrides> out=<out>` does, in this process."""
    return prepare(check_prepare(compose("prepare", *overrides, f"out={out}", f"paths.output_dir={out.parent / 'p'}")))


def test_shards_hold_the_in_memory_splits(digits_shards):
    meta = json.loads((digits_shards / "cnnlab.json").read_text())
    assert {k: meta["splits"][k]["images"] for k in DIGITS_SPLITS} == DIGITS_SPLITS
    assert meta["store"] == "pixels" and meta["input_shape"] == [1, 8, 8] and len(meta["class_names"]) == 10
    memory = make_datamodule(compose_train().data, digits_shards)
    memory.setup()
    for split in DIGITS_SPLITS:
        assert _items(digits_shards, split) == split_counts(memory.splits[split]), split
    assert meta["mean"] == pytest.approx(list(memory.info.mean))


def test_train_from_shards_counts_every_test_image_once(fit, digits_shards, tmp_path, capsys):
    run = fit("data=stream", f"data.root={digits_shards}", "trainer.max_epochs=2", "data.batch_size=64")
    matrix = [line.split(",")[1:] for line in (run.dir / "confusion_matrix.csv").read_text().splitlines()[1:]]
    assert sum(int(v) for row in matrix for v in row) == 360
    assert run.results()["test/acc"] > 0.2  # learns: 10 classes, chance is 0.1
    saved = torch.load(run.dir / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]["data_info"]
    assert saved["name"] == "digits" and saved["shards"] == str(digits_shards)
    # predict needs no shards: the checkpoint carries the classes and the normalisation
    image = run.dir / "digit.png"
    Image.fromarray((torch.rand(8, 8) * 255).byte().numpy()).save(image)
    Deploy(tmp_path, capsys)(f"ckpt_path={run.dir / 'checkpoints' / 'best.ckpt'}", f"input={image}",
                             f"output={run.dir / 'p.csv'}", script="predict.py")
    assert (run.dir / "p.csv").read_text().splitlines()[0].startswith("file,predicted,probability,p_0")


def test_folder_shards_keep_the_files_and_decode_to_the_same_pixels(tmp_path):
    write_images(tmp_path / "pets", n_per_class=12, size=(6, 6))
    pets = ("data=folder", f"data.root={tmp_path / 'pets'}", "data.workers=1", "workers=2", "chunk_mb=1")
    write_shards(tmp_path / "shards", *pets)
    meta = json.loads((tmp_path / "shards" / "cnnlab.json").read_text())
    assert meta["store"] == "encoded" and meta["class_names"] == list(CLASSES)
    folder = make_datamodule(
        {"family": "folder", "root": str(tmp_path / "pets"), "workers": 1, "cache": False}, tmp_path
    )
    folder.setup()
    for split in ("train", "val", "test"):
        assert _items(tmp_path / "shards", split) == split_counts(folder.splits[split]), split
    assert meta["mean"] == pytest.approx(list(folder.info.mean), abs=1e-6)
    assert meta["std"] == pytest.approx(list(folder.info.std), abs=1e-6)
    chunk = next((tmp_path / "shards" / "train").glob("chunk-*.bin")).read_bytes()
    png = (tmp_path / "pets" / "cat" / "000.png").read_bytes()
    assert png in chunk  # the file's own bytes, not decoded pixels
    write_shards(tmp_path / "again", *pets)  # the same input gives the same chunks (the same training order)
    for split in ("train", "val", "test", "train_eval"):
        chunks = [sorted((tmp_path / out / split).glob("chunk-*.bin")) for out in ("shards", "again")]
        assert [p.read_bytes() for p in chunks[0]] == [p.read_bytes() for p in chunks[1]], split


def test_prepare_names_a_bad_image_and_never_replaces_other_files(tmp_path):
    write_images(tmp_path / "pets", n_per_class=6, size=(6, 6))
    (tmp_path / "pets" / "dog" / "zz.jpg").write_text("not an image")
    pets = (
        "data=folder",
        f"data.root={tmp_path / 'pets'}",
        "data.workers=1",
        "data.image_size=6",
        "data.channels=3",
        "workers=1",
        "chunk_mb=1",
    )
    with pytest.raises(DataError, match=r"zz.jpg: not a readable image .*data.skip_bad_images=true"):
        write_shards(tmp_path / "shards", *pets)
    assert not (tmp_path / "shards" / "cnnlab.json").exists()  # nothing half-written is left to be streamed
    write_shards(tmp_path / "shards", *pets, "data.skip_bad_images=true")
    meta = json.loads((tmp_path / "shards" / "cnnlab.json").read_text())
    assert sum(meta["splits"][s]["images"] for s in ("train", "val", "test")) == 18 and len(meta["skipped"]) == 1
    mine = tmp_path / "mine"
    (mine / ".partial").mkdir(parents=True)  # what a killed prepare.py leaves, beside the user's own files
    (mine / "notes.txt").write_text("keep me")
    (mine / "train").mkdir()
    (mine / "train" / "photo.jpg").write_text("mine too")
    with pytest.raises(ConfigError, match="holds files that prepare.py did not write \\(notes.txt\\)"):
        write_shards(mine, *pets, "data.skip_bad_images=true")
    assert (mine / "notes.txt").read_text() == "keep me" and (mine / "train" / "photo.jpg").read_text() == "mine too"


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_bad_shards_are_one_sentence_before_training(digits_shards, tmp_path):
    def error(root, **options):
        with pytest.raises(CnnlabError) as info:
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
    edited = _copy(digits_shards, tmp_path / "edited")
    meta = json.loads((edited / "cnnlab.json").read_text())
    (edited / "cnnlab.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "class_names"}))
    assert "'class_names' is missing" in error(edited) and "write the shards again" in error(edited)
    # through the command line: exit 2, one line, nothing trained
    run = run_script("train.py", tmp_path / "run", "data=stream", f"data.root={cut}")
    assert run.returncode == 2 and "Traceback" not in run.output and str(chunk) in run.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_shards_that_disagree_with_their_description_stop_in_one_sentence(digits_shards, tmp_path, fit):
    """Found only while reading (a label beyond the classes named, pixels of another shape, bytes damaged in place):
    one sentence naming the shards, from a loader worker too, never an IndexError or a shape error deep in training."""
    fewer = _copy(digits_shards, tmp_path / "fewer")
    meta = json.loads((fewer / "cnnlab.json").read_text())
    (fewer / "cnnlab.json").write_text(json.dumps({**meta, "class_names": ["zero", "one"]}))
    with pytest.raises(CnnlabError, match="names 2 classes, but the shards hold an image of label"):
        fit("data=stream", f"data.root={fewer}", "data.workers=0", "arch=small", "debug=fast")
    run = run_script("train.py", tmp_path / "cli", "data=stream", f"data.root={fewer}", "arch=small", "debug=fast")
    assert run.returncode == 2 and "Traceback" not in run.output and "names 2 classes" in run.stderr, run.stderr[-2000:]
    assert len(run.stderr.strip().splitlines()) == 1
    larger = _copy(digits_shards, tmp_path / "larger")
    (larger / "cnnlab.json").write_text(json.dumps({**meta, "input_shape": [1, 9, 9]}))
    with pytest.raises(CnnlabError, match="says 1x9x9 images, but the shards hold 1x8x8 ones"):
        fit("data=stream", f"data.root={larger}", "data.workers=0", "arch=small", "debug=fast")
    damaged = _copy(digits_shards, tmp_path / "damaged")
    chunk = sorted((damaged / "val").glob("chunk-*.bin"))[0]
    data = bytearray(chunk.read_bytes())
    data[:64] = bytes(64)  # the chunk's own index of its items, zeroed: same size, unreadable
    chunk.write_bytes(bytes(data))
    with pytest.raises(CnnlabError, match="the shards are damaged"):
        fit("data=stream", f"data.root={damaged}", "data.workers=0", "arch=small", "debug=fast")


KILL = (
    "trainer.deterministic=true",
    "trainer.max_epochs=2",
    "arch=small",
    "checkpoint_every_n_steps=5",
    "callbacks.model_checkpoint.monitor=null",
    "data.batch_size=64",
)


def test_killed_stream_run_resumes_mid_epoch_with_the_same_result(digits_shards, tmp_path, monkeypatch):
    """The loader's position is in the checkpoint: the resumed run sees the rest of the interrupted epoch."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    stream = ("data=stream", f"data.root={digits_shards}", *KILL)
    whole = train_in_process(tmp_path / "whole", *stream)  # the kill itself needs a process of its own
    killed = run_script(
        "train.py",
        tmp_path / "killed",
        *stream,
        "+callbacks.kill._target_=tests.faults.KillAtStep",
        "+callbacks.kill.step=27",
    )
    assert killed.returncode == -9
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    # 19 full batches per epoch (the last partial batch is dropped): step 25 is 6 batches into the second epoch
    assert saved["global_step"] == 25 and saved["epoch"] == 1
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["num_samples_yielded"] == 6 * 64
    resumed = train_in_process(tmp_path / "resumed", *stream, f"ckpt_path={last}")
    for key in ("test/acc", "test/loss", "val/acc", "train_eval/loss"):
        assert resumed.results()[key] == pytest.approx(whole.results()[key], abs=1e-6), key


def test_folder_too_large_for_memory_is_refused_before_decoding(tmp_path):
    write_images(tmp_path / "pets", n_per_class=4, size=(6, 6))
    dm = make_datamodule(
        {"family": "folder", "root": str(tmp_path / "pets"), "workers": 1, "max_memory_gb": 1e-6}, tmp_path
    )
    with pytest.raises(DataError) as info:
        dm.setup()
    message = str(info.value)
    assert "12 images of 3x6x6 take" in message and "data.max_memory_gb=1e-06 GiB" in message
    assert "python src/prepare.py data=folder" in message and "data=stream" in message
    assert not (tmp_path / "pets" / ".cnnlab_cache").exists()  # nothing was decoded
    with pytest.raises(ConfigError, match="data.max_memory_gb = -1"):
        make_datamodule({"family": "folder", "root": str(tmp_path / "pets"), "max_memory_gb": -1}, tmp_path)


def test_prepare_refuses_a_stream_no_out_and_bad_options(digits_shards):
    out = digits_shards.parent / "again"
    with pytest.raises(ConfigError, match="data=stream reads shards"):
        write_shards(out, "data=stream", f"data.root={digits_shards}")
    with pytest.raises(ConfigError, match="needs out=FOLDER"):
        check_prepare(compose("prepare", "paths.output_dir=/tmp"))
    for option, message in (
        ("store=zip", "store = 'zip'; expected one of 'auto'"),
        ("store=encoded", "store=encoded keeps image files as found"),
        ("chunk_mb=0", "chunk_mb = 0; expected a positive integer"),
        ("workers=0", "workers = 0; expected null or a positive integer"),
    ):
        with pytest.raises(ConfigError, match=message):
            write_shards(digits_shards.parent / "x", option)
