"""predict.py and export.py on a checkpoint trained in the tests, checked against the LightningModule itself; run
in-process through their front door (check_predict / check_export), as the command line runs them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from cnnlab.checks.errors import CnnlabError
from cnnlab.compose import compose
from cnnlab.deploy import check_export, check_predict, export, predict
from cnnlab.model.module import LayerListClassifier
from tests.conftest import Run


class Deploy:
    """predict.py / export.py in this process, each call in its own run folder."""

    def __init__(self, tmp_path, capsys):
        self.tmp_path, self.capsys, self.count = tmp_path, capsys, 0

    def __call__(self, *overrides: str, script: str) -> Run:
        self.count += 1
        out = self.tmp_path / f"{script.removesuffix('.py')}{self.count}"
        cfg = compose(script.removesuffix(".py"), *overrides, f"paths.output_dir={out}")
        if script == "predict.py":
            predict(*check_predict(cfg))
        else:
            export(*check_export(cfg))
        printed = self.capsys.readouterr()
        return Run(0, printed.out, printed.err, out)


@pytest.fixture
def deploy(tmp_path, capsys):
    return Deploy(tmp_path, capsys)


def digits(n: int) -> np.ndarray:
    return np.round(load_digits().images[:n] * (255 / 16)).astype(np.uint8)


def reference_probabilities(ckpt, images_uint8: np.ndarray) -> np.ndarray:
    """The trained LightningModule with the data module's normalisation: what predictions must equal."""
    module = LayerListClassifier.load_from_checkpoint(ckpt, map_location="cpu", weights_only=True).eval()
    info = module.hparams.data_info
    x = torch.from_numpy(images_uint8).float().div(255).unsqueeze(1)
    x = (x - info["mean"][0]) / info["std"][0]
    with torch.no_grad():
        return module(x).softmax(1).numpy()


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ckpt(trained_run):
    return trained_run.dir / "checkpoints" / "best.ckpt"


def test_predict_npy_matches_the_trained_module(deploy, tmp_path, ckpt):
    images = digits(12)
    np.save(tmp_path / "batch.npy", images)
    run = deploy(f"ckpt_path={ckpt}", f"input={tmp_path / 'batch.npy'}", script="predict.py")
    rows = read_rows(run.dir / "predictions.csv")
    probs = np.array([[float(r[f"p_{c}"]) for c in range(10)] for r in rows])
    expected = reference_probabilities(ckpt, images)
    assert len(rows) == 12 and np.allclose(probs, expected, atol=1e-5)
    assert [r["predicted"] for r in rows] == [str(k) for k in expected.argmax(1)]
    assert np.allclose(probs.sum(1), 1, atol=1e-4)


def test_predict_folder_of_png_and_jpeg_converts_channels_and_size(deploy, tmp_path, ckpt):
    folder = tmp_path / "imgs"
    folder.mkdir()
    images = digits(3)
    Image.fromarray(images[0]).save(folder / "a.png")  # exact size, grey
    Image.fromarray(np.stack([images[1]] * 3, -1)).resize((32, 32), Image.NEAREST).save(folder / "b.jpg", quality=95)
    Image.fromarray(images[2]).convert("RGBA").save(folder / "c.png")
    (folder / "notes.txt").write_text("not an image, skipped")
    run = deploy(f"ckpt_path={ckpt}", f"input={folder}", script="predict.py")
    rows = read_rows(run.dir / "predictions.csv")
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.jpg", "c.png"]
    exact = reference_probabilities(ckpt, images[[0, 2]])
    assert np.allclose([float(rows[0][f"p_{c}"]) for c in range(10)], exact[0], atol=1e-5)
    assert np.allclose([float(rows[2][f"p_{c}"]) for c in range(10)], exact[1], atol=1e-5)
    assert "3 predictions" in run.stdout


def test_export_onnx_runs_without_cnnlab(train, ckpt):
    """The command line itself: export.py as a user runs it."""
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    run = train(f"ckpt_path={ckpt}", "format=onnx", script="export.py")
    assert run.returncode == 0, run.output[-3000:]
    path = run.dir / "model.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = digits(9)
    out = session.run(None, {"image": (images[:, None] / 255).astype(np.float32)})[0]
    logits_ref = np.log(reference_probabilities(ckpt, images))
    # the seed arch's T has no softmax: the output is logits, equal up to a per-row constant
    assert np.allclose(out - out.max(1, keepdims=True), logits_ref - logits_ref.max(1, keepdims=True), atol=1e-4)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == [str(d) for d in range(10)]


def test_export_torch_program_with_softmax_terminal(fit, deploy):
    trained = fit("arch=small", "+arch.layers.7.activation=softmax", "debug=fast")
    ckpt = trained.dir / "checkpoints" / "last.ckpt"
    run = deploy(f"ckpt_path={ckpt}", "format=torch_export", script="export.py")
    program = torch.export.load(run.dir / "model.pt2").module()
    out = program(torch.from_numpy(digits(5)[:, None] / 255).float())
    assert torch.allclose(out.sum(1), torch.ones(5), atol=1e-5)  # T softmax: probabilities
    assert np.allclose(out.detach().numpy(), reference_probabilities(ckpt, digits(5)), atol=1e-5)


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing", ["does not exist"]),
        ("truncated", ["cannot read checkpoint", "completely written"]),
        ("code", ["cannot read checkpoint", "refers to code", "never run"]),
        ("other_arch", ["weights do not fit its own layer list"]),
        ("not_cnnlab", ["is not a cnnlab checkpoint"]),
    ],
)
def test_bad_checkpoints(deploy, tmp_path, ckpt, case, fragments, capsys):
    path = tmp_path / f"{case}.ckpt"
    if case == "truncated":
        path.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif case == "code":
        torch.save({"state_dict": {}, "x": Payload()}, path)
    elif case == "other_arch":
        data = torch.load(ckpt, weights_only=True)
        data["hyper_parameters"]["layers"][0]["num_output"] = 32
        torch.save(data, path)
    elif case == "not_cnnlab":
        torch.save({"state_dict": {"w": torch.zeros(1)}}, path)
    np.save(tmp_path / "x.npy", digits(2))
    with pytest.raises(CnnlabError) as caught:
        deploy(f"ckpt_path={path}", f"input={tmp_path / 'x.npy'}", script="predict.py")
    assert "code ran" not in capsys.readouterr().out
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("broken.png", "not a readable image"),
        ("wrong.npy", "array of shape (2, 5, 5); the model takes N x 1 x 8 x 8"),
        ("nowhere.png", "does not exist"),
        ("empty_dir", "no images"),
    ],
)
def test_bad_inputs(deploy, tmp_path, ckpt, case, fragment):
    path = tmp_path / case
    if case == "broken.png":
        path.write_text("not a png")
    elif case == "wrong.npy":
        np.save(path, np.zeros((2, 5, 5), np.uint8))
    elif case == "empty_dir":
        path.mkdir()
    with pytest.raises(CnnlabError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        deploy(f"ckpt_path={ckpt}", f"input={path}", script="predict.py")


def test_images_of_every_mode_are_converted_not_clipped(deploy, tmp_path, ckpt):
    """A 16-bit PNG is scaled to 8 bits (Pillow's own conversion would make it white), a palette image and an image
    with alpha are composited as a viewer shows them; a float array on the 0..255 scale is read as such, with a
    warning, where read as 0..1 it would be all white."""
    from cnnlab.data.image_cache import decode

    deep = (np.round(digits(1)[0].astype(np.float64) * 257)).astype(np.uint16)  # the digit, 16-bit
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert np.array_equal(decode(tmp_path / "deep.png", (1, 8, 8))[..., 0], digits(1)[0])
    palette = Image.fromarray(digits(1)[0]).convert("P")
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(decode(tmp_path / "palette.png", (1, 8, 8))[..., 0], digits(1)[0])
    clear = Image.new("LA", (8, 8), (0, 0))  # fully transparent black: white where a viewer shows it
    clear.save(tmp_path / "clear.png")
    assert decode(tmp_path / "clear.png", (1, 8, 8)).min() == 255
    Image.fromarray(digits(1)[0]).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert np.abs(decode(tmp_path / "cmyk.jpg", (1, 8, 8))[..., 0].astype(int) - digits(1)[0]).max() <= 8
    np.save(tmp_path / "float255.npy", digits(3).astype(np.float32))  # a float copy of 0..255 pixels: never guessed
    with pytest.raises(CnnlabError, match="float values from 0 to 255; floats are read as 0..1"):
        deploy(f"ckpt_path={ckpt}", f"input={tmp_path / 'float255.npy'}", script="predict.py")
    np.save(tmp_path / "float01.npy", digits(3).astype(np.float32) / 255)
    np.save(tmp_path / "uint8.npy", digits(3))
    scaled = read_rows(
        deploy(f"ckpt_path={ckpt}", f"input={tmp_path / 'float01.npy'}", script="predict.py").dir / "predictions.csv"
    )
    exact = read_rows(
        deploy(f"ckpt_path={ckpt}", f"input={tmp_path / 'uint8.npy'}", script="predict.py").dir / "predictions.csv"
    )
    assert [r["predicted"] for r in scaled] == [r["predicted"] for r in exact]
    np.save(tmp_path / "negative.npy", -digits(2).astype(np.float32))
    with pytest.raises(CnnlabError, match="float values from -255"):
        deploy(f"ckpt_path={ckpt}", f"input={tmp_path / 'negative.npy'}", script="predict.py")
