"""logger=tensorboard and logger=mlflow: what each dashboard holds after a real run, read back with its own reader;
DDP runs and DDP sweeps, read back through what they logged."""

from __future__ import annotations

import csv

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from tests.conftest import compose_train
from tests.test_scale import sweep
from tests.test_train_cli import eval_in_process, read_confusion

REPORT_ARTIFACTS = {
    "curves.png",
    "confusion_matrix.png",
    "classification_report.txt",
    "classification_report.json",
    "confusion_matrix.csv",
    "arch_table.txt",
    "summary.txt",
    "config.yaml",
}


def events(folder) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    accumulator.Reload()
    return accumulator


def hparams(accumulator: EventAccumulator) -> tuple[set[str], set[str]]:
    """(the config keys, the metric tags) of TensorBoard's HParams view for this run."""
    content = accumulator.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    return set(start.session_start_info.hparams), {m.name.tag for m in experiment.experiment.metric_infos}


def test_tensorboard_holds_scalars_images_report_text_and_the_config(fit):
    run = fit("logger=tensorboard", "arch=small", "trainer.max_epochs=2", "data.batch_size=256")
    tb = events(run.dir / "tensorboard")
    tags = tb.Tags()
    for key in ("train/loss", "train/err", "val/acc", "val/err", "test/acc", "train_eval/err"):
        assert key in tags["scalars"], key
    assert len(tb.Scalars("val/acc")) == 2  # one point per epoch
    assert tb.Scalars("test/acc")[-1].value == pytest.approx(run.results()["test/acc"], abs=1e-6)
    assert {"curves", "confusion_matrix"} <= set(tags["images"])
    assert {"classification_report/text_summary", "arch_table/text_summary"} <= set(tags["tensors"])
    report = tb.Tensors("classification_report/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "precision" in report and "macro avg" in report
    config_keys, metric_tags = hparams(tb)
    assert {"arch/layers", "data/batch_size", "optim/lr", "model/reg", "trainer/max_epochs", "seed"} <= config_keys
    assert {"val/acc", "test/acc", "test/err", "train_eval/err"} <= metric_tags
    assert (run.dir / "metrics.csv").is_file()  # the CSV record stays


def test_mlflow_holds_params_metrics_artifacts_and_the_checkpoint_when_asked(fit, tmp_path):
    store = f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    run = fit(
        "logger=mlflow",
        "arch=small",
        "trainer.max_epochs=2",
        "data.batch_size=256",
        "logger.mlflow.log_model=true",
        f"logger.mlflow.tracking_uri={store}",
    )
    client = MlflowClient(store)
    (found,) = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == run.dir.name
    params = found.data.params
    assert params["optim/lr"] == "0.001" and params["data/family"] == "digits"
    layers = compose_train("arch=small").arch.layers
    assert params["arch/layers"].count("'type'") == len(layers) > 6  # the whole list, not cut at 250 characters
    assert len(client.get_metric_history(found.info.run_id, "val/acc")) == 2  # one point per epoch
    assert found.data.metrics["test/acc"] == pytest.approx(run.results()["test/acc"], abs=1e-6)
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert artifacts >= REPORT_ARTIFACTS
    # log_model=true: the best checkpoint (cnnlab) and the last one (Lightning, with its metadata)
    assert {a.path for a in client.list_artifacts(found.info.run_id, "checkpoints")} == {"checkpoints/best.ckpt"}
    assert "last/last.ckpt" in {a.path for a in client.list_artifacts(found.info.run_id, "last")}
    # artifacts live beside the local store, not in ./mlruns of wherever the command ran
    assert (tmp_path / "mlflow" / "artifacts" / "cnnlab").is_dir()


def test_a_ddp_sweep_runs_each_job_once_into_one_tensorboard_folder_and_one_mlflow_experiment(tmp_path):
    """DDP inside a sweep forks (a relaunched script would run the whole sweep again in every process)."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "sweep"
    proc = sweep(
        out,
        "logger=[tensorboard,mlflow]",
        "trainer=cpu",
        "trainer.strategy=ddp",
        "trainer.devices=2",
        "arch=small",
        "debug=fast",
        "seed=1,2",
        env={"MLFLOW_TRACKING_URI": store},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "uses ddp_fork instead" in proc.stderr + proc.stdout
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert all(read_confusion(out / r["job"] / "confusion_matrix.csv").sum() == 360 for r in rows)
    jobs = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert [[part for part in j.split(",") if part.startswith("seed=")] for j in jobs] == [["seed=1"], ["seed=2"]]
    for job in jobs:
        assert "test/acc" in events(out / "tensorboard" / job).Tags()["scalars"]
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(f"cnnlab-{out.name}")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted("seed=1" in r.info.run_name.split(",") for r in runs) == [False, True]
    assert {r.data.params["seed"] for r in runs} == {"1", "2"}  # each job its own run: nothing merged
    assert all(r.info.status == "FINISHED" and "test/acc" in r.data.metrics for r in runs)
    assert not any(client.list_artifacts(r.info.run_id, "checkpoints") for r in runs)  # log_model is off by default


def test_ddp_on_two_cpu_processes_counts_each_test_image_once_and_logs_one_run(train, tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    # optim=muon: its orthogonalised steps, from the gradients DDP averaged, keep the two processes' weights equal
    run = train("logger=mlflow", "trainer=ddp_cpu", "arch=small", "trainer.max_epochs=2", "optim=muon")
    assert run.returncode == 0, run.output[-3000:]
    assert "Starting with 2 processes" in run.output
    cm = read_confusion(run.dir / "confusion_matrix.csv")
    assert cm.sum() == 360
    single = eval_in_process(tmp_path / "single", "ckpt_path=" + str(run.dir / "checkpoints/best.ckpt"))
    assert read_confusion(tmp_path / "single" / "confusion_matrix.csv").tolist() == cm.tolist()
    assert single["test/acc"] == pytest.approx(run.results()["test/acc"], abs=1e-6)
    assert "test error rate" in run.stdout  # the report came back from the forked test process, printed last
    client = MlflowClient(store)
    (found,) = client.search_runs([client.get_experiment_by_name("cnnlab").experiment_id])
    assert len(client.get_metric_history(found.info.run_id, "val/acc")) == 2 and "test/acc" in found.data.metrics
    # fit and test ran in two forked processes: metrics.csv still holds fit's epochs beside test's row
    rows = (run.dir / "metrics.csv").read_text().splitlines()
    assert "val/acc" in rows[0] and "test/acc" in rows[0] and len(rows) == 1 + 4 + 1


def test_a_missing_logger_package_is_one_sentence_naming_the_extra(train, tmp_path, monkeypatch):
    """A machine without the extra, as the command line meets it (a subprocess whose `import mlflow` fails)."""
    shadow = tmp_path / "shadow" / "mlflow"  # stands in for a machine without mlflow: importing it fails
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named mlflow')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    run = train("logger=[tensorboard,mlflow]")
    assert run.returncode == 2, run.output[-3000:]
    assert "error: logger=mlflow needs the 'mlflow' package" in run.stderr
    assert "pip install -e '.[mlflow]'" in run.stderr and "Traceback" not in run.stderr
