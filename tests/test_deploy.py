"""predict.py and export.py on a checkpoint trained in the tests, checked against the LightningModule itself."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from cnnlab.model import LayerListClassifier


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


def test_predict_npy_matches_the_trained_module(train, tmp_path, ckpt):
    images = digits(12)
    np.save(tmp_path / "batch.npy", images)
    run = train(f"ckpt_path={ckpt}", f"input={tmp_path / 'batch.npy'}", script="predict.py")
    assert run.returncode == 0, run.output[-3000:]
    rows = read_rows(run.dir / "predictions.csv")
    probs = np.array([[float(r[f"p_{c}"]) for c in range(10)] for r in rows])
    expected = reference_probabilities(ckpt, images)
    assert len(rows) == 12 and np.allclose(probs, expected, atol=1e-5)
    assert [r["predicted"] for r in rows] == [str(k) for k in expected.argmax(1)]
    assert np.allclose(probs.sum(1), 1, atol=1e-4)


def test_predict_folder_of_png_and_jpeg_converts_channels_and_size(train, tmp_path, ckpt):
    folder = tmp_path / "imgs"
    folder.mkdir()
    images = digits(3)
    Image.fromarray(images[0]).save(folder / "a.png")  # exact size, grey
    Image.fromarray(np.stack([images[1]] * 3, -1)).resize((32, 32), Image.NEAREST).save(folder / "b.jpg", quality=95)
    Image.fromarray(images[2]).convert("RGBA").save(folder / "c.png")
    (folder / "notes.txt").write_text("not an image, skipped")
    run = train(f"ckpt_path={ckpt}", f"input={folder}", script="predict.py")
    assert run.returncode == 0, run.output[-3000:]
    rows = read_rows(run.dir / "predictions.csv")
    assert [r["file"].rsplit("/", 1)[-1] for r in rows] == ["a.png", "b.jpg", "c.png"]
    exact = reference_probabilities(ckpt, images[[0, 2]])
    assert np.allclose([float(rows[0][f"p_{c}"]) for c in range(10)], exact[0], atol=1e-5)
    assert np.allclose([float(rows[2][f"p_{c}"]) for c in range(10)], exact[1], atol=1e-5)
    assert "3 predictions" in run.stdout


def test_export_onnx_runs_without_cnnlab(train, ckpt):
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


def test_export_torch_program_with_softmax_terminal(train):
    trained = train("arch=small", "+arch.layers.7.activation=softmax", "debug=fast")
    assert trained.returncode == 0, trained.output[-3000:]
    ckpt = trained.dir / "checkpoints" / "last.ckpt"
    run = train(f"ckpt_path={ckpt}", "format=torch_export", script="export.py")
    assert run.returncode == 0, run.output[-3000:]
    program = torch.export.load(run.dir / "model.pt2").module()
    out = program(torch.from_numpy(digits(5)[:, None] / 255).float())
    assert torch.allclose(out.sum(1), torch.ones(5), atol=1e-5)  # T softmax: probabilities
    assert np.allclose(out.detach().numpy(), reference_probabilities(ckpt, digits(5)), atol=1e-5)


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize("case, fragments", [
    ("missing", ["does not exist"]),
    ("truncated", ["cannot read checkpoint", "completely written"]),
    ("code", ["cannot read checkpoint", "refers to code", "never run"]),
    ("other_arch", ["weights do not fit its own layer list"]),
    ("not_cnnlab", ["is not a cnnlab checkpoint"]),
])
def test_bad_checkpoints(train, tmp_path, ckpt, case, fragments):
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
    run = train(f"ckpt_path={path}", f"input={tmp_path / 'x.npy'}", script="predict.py")
    assert run.returncode == 2, run.output[-2000:]
    assert "Traceback" not in run.output and "code ran" not in run.output
    for fragment in fragments:
        assert fragment in run.stderr, run.stderr


@pytest.mark.parametrize("case, fragment", [
    ("broken.png", "not a readable image"),
    ("wrong.npy", "array of shape (2, 5, 5); the model takes N x 1 x 8 x 8"),
    ("nowhere.png", "does not exist"),
    ("empty_dir", "no images"),
])
def test_bad_inputs(train, tmp_path, ckpt, case, fragment):
    path = tmp_path / case
    if case == "broken.png":
        path.write_text("not a png")
    elif case == "wrong.npy":
        np.save(path, np.zeros((2, 5, 5), np.uint8))
    elif case == "empty_dir":
        path.mkdir()
    run = train(f"ckpt_path={ckpt}", f"input={path}", script="predict.py")
    assert run.returncode == 2 and fragment in run.stderr and "Traceback" not in run.output, run.stderr
