"""What `train.py` and `eval.py` do with their checked plans: fit, test, report, and say where the time went."""

import json
import logging
import sys
from pathlib import Path

import pytorch_lightning as pl

from cnnlab.interrupt import Interrupted
from cnnlab.nodes import wait_for_master
from cnnlab.report.console import summary
from cnnlab.run import lightning
from cnnlab.run.build import build, config_text, make_trainer
from cnnlab.run.plans import EvalPlan, TrainPlan
from cnnlab.run.stops import record_stop
from cnnlab.timing import Timing, process_age

log = logging.getLogger("cnnlab")


def already_done(plan: TrainPlan) -> dict[str, float] | None:
    """In a sweep re-run into the same folder, a job whose config is unchanged and finished is not run again."""
    results, config = plan.out / "results.json", plan.out / "config.yaml"
    if plan.job.in_sweep and results.is_file() and config.is_file() and config.read_text() == config_text(plan.config) \
            and "status" not in json.loads(results.read_text()):
        log.info("%s: finished before with the same config; not run again.", plan.out)
        return json.loads(results.read_text())
    return None


def scalars(trainer: pl.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if hasattr(v, "numel") and v.numel() == 1}


def write_results(out: Path, metrics: dict[str, float], trainer: pl.Trainer) -> None:
    """results.json: the final metrics of every split, the best validation accuracy and its epoch (what a search
    ranks a trial by), and where the wall time went, for sweeps and scripts."""
    history = getattr(trainer.lightning_module, "history", {}).get("val/acc") or {}
    if history:
        epoch = max(history, key=lambda e: (history[e], -e))
        metrics |= {"val/best_acc": history[epoch], "val/best_epoch": epoch + 1}
    timing = next((c for c in trainer.callbacks if isinstance(c, Timing)), None)
    if timing is not None:
        metrics |= timing.times | {"time/total_s": round(process_age(), 3)}
    if trainer.is_global_zero:
        (out / "results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def _close(trainer: pl.Trainer) -> None:
    from cnnlab.dashboards import dashboards

    sink = dashboards(trainer)
    if sink is not None:
        sink.finish(trainer)


def finish(trainer: pl.Trainer) -> None:
    """Close the dashboards' runs (so that the jobs of a sweep never merge into one), then print the run's summary
    from the report value: the last thing on the console, after every progress bar and logger message."""
    _close(trainer)
    sinks = lightning.report_sinks(trainer)
    if trainer.is_global_zero and sinks is not None and sinks.report is not None:
        print("\n" + summary(sinks.report), end="", flush=True)


def test(trainer: pl.Trainer, model, datamodule, ckpt_path: str | None = None) -> dict[str, float]:
    """The test split and the (unaugmented) training set; the report sinks write the report."""
    lightning.continue_csv(trainer)
    trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False, weights_only=True)
    return scalars(trainer)


def shortened(plan) -> None:
    """One line when the trainer's limits shorten the run (debug=fast, limit_*_batches): its figures are a sample's."""
    limits = plan.trainer.shortened()
    if limits:
        log.info("shortened run (trainer.limit_*_batches): %s; the figures describe those batches only", limits)


def train(plan: TrainPlan) -> dict[str, float]:
    lightning.quiet_lightning()
    done = already_done(plan)
    if done is not None:
        return done
    for stale in ("error.txt", "summary.txt", "results.json"):  # from an earlier attempt of this sweep job
        (plan.out / stale).unlink(missing_ok=True)
    if plan.master is not None:
        wait_for_master(plan.master)
    run = build(plan)
    trainer = run.trainer
    shortened(plan)
    try:
        trainer.fit(run.model, datamodule=run.datamodule, ckpt_path=run.ckpt_path, weights_only=True)
    except Interrupted as stop:  # Ctrl-C or SIGTERM: the checkpoint is written; say how to go on, last
        _close(trainer)
        record_stop(str(stop), status="stopped")
        print(f"\nerror: {stop}", file=sys.stderr, flush=True)
        raise SystemExit(stop.exit_code) from None
    metrics = scalars(trainer)
    if plan.run.test:
        metrics |= test(trainer, run.model, run.datamodule, ckpt_path=lightning.best_checkpoint(trainer))
    write_results(plan.out, metrics, trainer)
    finish(trainer)
    return metrics


def evaluate(plan: EvalPlan) -> dict[str, float]:
    """`eval.py`: the checkpoint on its data set's test split (or `data=...`), with the same report files; the curves
    are the training run's, which the checkpoint holds."""
    from cnnlab.data import make_datamodule
    from cnnlab.model.module import LayerListClassifier

    lightning.quiet_lightning()
    datamodule = make_datamodule(plan.data, plan.data_dir)
    plan.check_data(datamodule)
    pl.seed_everything(plan.seed, workers=True, verbose=False)
    model = LayerListClassifier.load_from_checkpoint(plan.ckpt_path, map_location="cpu", weights_only=True)
    model.tta_views = model.tta_views if plan.tta is None else plan.tta
    plan.out.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(plan.trainer, plan.loggers, {}, plan.out, plan.config, model.net.table())
    metrics = test(trainer, model, datamodule)
    write_results(plan.out, metrics, trainer)
    finish(trainer)
    return metrics
