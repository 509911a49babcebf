"""Learning the layer list (the seed's planned next step): Optuna samples layer lists from a declared space,
each is trained by the same LightningModule and data module as `train.py`, unpromising ones are pruned, and
the best is written as an arch file that `train.py arch=file arch.path=...` runs unchanged."""

from __future__ import annotations

import csv
import functools
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import optuna
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from sqlalchemy.exc import SQLAlchemyError

from cnnlab.data import make_datamodule
from cnnlab.errors import ArchError, ConfigError
from cnnlab.layers import build_network
from cnnlab.model import LayerListClassifier

log = logging.getLogger("cnnlab.search")

SPACE_KEYS = {"blocks", "width", "kernel", "stride", "pool", "batch_norm", "activation", "drop_out", "fc_layers",
              "fc_width", "lr", "reg", "batch_size", "epochs"}
OBJECTIVES = {"val_err", "params", "flops"}


def check_space(space: dict[str, Any]) -> None:
    """A space is refused before any trial: unknown or missing keys, empty choices, inverted ranges."""
    unknown, missing = set(space) - SPACE_KEYS, SPACE_KEYS - set(space)
    if unknown or missing:
        raise ConfigError(f"search space: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}; "
                          f"a space has exactly: {', '.join(sorted(SPACE_KEYS))}.")
    for key, value in space.items():
        if key == "epochs":
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"search.epochs = {value!r}; expected a positive integer.")
        elif isinstance(value, dict):
            if set(value) - {"low", "high", "log"} or not {"low", "high"} <= set(value):
                raise ConfigError(f"search.{key} = {value}; a range is {{low: .., high: .., log: false}}.")
            if value["low"] > value["high"] or (value.get("log") and value["low"] <= 0):
                raise ConfigError(f"search.{key}: low {value['low']} must be <= high {value['high']} "
                                  "(and > 0 for a log range).")
        elif not isinstance(value, list) or not value:
            raise ConfigError(f"search.{key} = {value!r}; expected a non-empty list of choices or a range.")


def _draw(trial: optuna.Trial, name: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return trial.suggest_categorical(name, spec)
    if isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log"):
        return trial.suggest_int(name, spec["low"], spec["high"])
    return trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def sample_layers(trial: optuna.Trial, space: dict[str, Any]) -> list[dict[str, Any]]:
    """One layer list from the space (parameter names are per block, so that trials share them)."""
    layers: list[dict[str, Any]] = []
    activation = _draw(trial, "activation", space["activation"])
    for b in range(_draw(trial, "blocks", space["blocks"])):
        layers.append({"type": "C", "num_output": _draw(trial, f"width_{b}", space["width"]),
                       "kernel_size": _draw(trial, f"kernel_{b}", space["kernel"]),
                       "stride": _draw(trial, f"stride_{b}", space["stride"]), "activation": activation,
                       "batch_norm": _draw(trial, f"batch_norm_{b}", space["batch_norm"])})
        pool = _draw(trial, f"pool_{b}", space["pool"])
        if pool != "none":
            layers.append({"type": "P", "pool": pool, "kernel_size": 2, "stride": 2})
        drop = round(_draw(trial, f"drop_out_{b}", space["drop_out"]), 1)
        if drop > 0:
            layers.append({"type": "DO", "drop_out": drop})
    for f in range(_draw(trial, "fc_layers", space["fc_layers"])):
        layers.append({"type": "FC", "num_output": _draw(trial, f"fc_width_{f}", space["fc_width"]),
                       "activation": activation})
    layers.append({"type": "T"})
    return layers


class _Pruning(pl.Callback):
    """Keeps the best validation error of the trial; in single-objective studies reports it per epoch and stops
    the trial when Optuna's pruner says so (Optuna cannot prune multi-objective trials)."""

    def __init__(self, trial: optuna.Trial, report: bool):
        self.trial, self.report, self.pruned, self.best = trial, report, False, math.inf

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or "val/err" not in trainer.callback_metrics:
            return
        err = float(trainer.callback_metrics["val/err"])
        self.best = min(self.best, err)
        if self.report:
            self.trial.report(err, trainer.current_epoch)
            if self.trial.should_prune():
                self.pruned, trainer.should_stop = True, True


class Search:
    def __init__(self, cfg: DictConfig):
        self.cfg, self.out_dir = cfg, Path(cfg.paths.output_dir)
        self.space = OmegaConf.to_container(cfg.search, resolve=True)
        check_space(self.space)
        self.objectives = list(cfg.objectives)
        if not self.objectives or set(self.objectives) - OBJECTIVES or self.objectives[0] != "val_err":
            raise ConfigError(f"objectives = {self.objectives}; expected [val_err] or [val_err, params|flops].")
        self.data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
        self.datamodule = make_datamodule(self.data_cfg, cfg.paths.data_dir)

    def study(self) -> optuna.Study:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        url = self.cfg.storage or f"sqlite:///{self.out_dir / 'study.db'}"
        # SQLite shared by several workers: wait for the lock instead of failing at once
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        directions = ["minimize"] * len(self.objectives)
        pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if self.cfg.pruning and len(directions) == 1 \
            else optuna.pruners.NopPruner()  # Optuna prunes single-objective studies only
        for attempt in range(5):
            try:
                storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
                return optuna.create_study(study_name=self.cfg.study_name, storage=storage, directions=directions,
                                           sampler=optuna.samplers.TPESampler(seed=self.cfg.sampler_seed),
                                           pruner=pruner, load_if_exists=True)
            except SQLAlchemyError:  # workers starting together race to create the tables and the study
                if attempt == 4:
                    raise
                time.sleep(0.5 + random.random())
        raise AssertionError("unreachable")

    def objective(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        layers = sample_layers(trial, self.space)
        shape, classes = self.datamodule.input_shape, self.datamodule.num_classes
        net = build_network(layers, shape, classes)  # ArchError: refused, recorded as a failed trial
        trial.set_user_attr("layers", layers)
        trial.set_user_attr("params", net.num_params)
        trial.set_user_attr("flops", net.flops)
        lr, reg = _draw(trial, "lr", self.space["lr"]), _draw(trial, "reg", self.space["reg"])
        self.datamodule.batch_size = _draw(trial, "batch_size", self.space["batch_size"])
        pl.seed_everything(self.cfg.seed + trial.number, workers=True, verbose=False)
        model = LayerListClassifier(layers, {**self.datamodule.info(), "config": self.data_cfg},
                                    optimizer=functools.partial(torch.optim.Adam, lr=lr), reg=reg)
        pruning = _Pruning(trial, report=len(self.objectives) == 1)
        trainer_cfg = OmegaConf.to_container(self.cfg.trainer, resolve=True)
        trainer_cfg.pop("_target_", None)
        trainer_cfg.update(max_epochs=self.space["epochs"], logger=False, enable_checkpointing=False,
                           enable_progress_bar=False, callbacks=[pruning], default_root_dir=str(self.out_dir))
        trainer = pl.Trainer(**trainer_cfg)
        trainer.fit(model, datamodule=self.datamodule)
        if pruning.pruned:
            raise optuna.TrialPruned()
        val_err = pruning.best
        extra = {"params": net.num_params, "flops": net.flops}
        values = (val_err, *(float(extra[o]) for o in self.objectives[1:]))
        return values if len(values) > 1 else values[0]

    def run(self) -> optuna.Study:
        study = self.study()
        done = len(study.trials)
        if done >= self.cfg.n_trials:
            log.info("study %s already has %d trials (n_trials=%d).", self.cfg.study_name, done, self.cfg.n_trials)
        else:
            logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
            study.optimize(self.objective, catch=(ArchError,), callbacks=[optuna.study.MaxTrialsCallback(
                self.cfg.n_trials, states=None)])
        write_outputs(study, self.out_dir, self.objectives, self.datamodule)
        return study


def _rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        row = {"number": t.number, "state": t.state.name, "values": "" if t.values is None else
               " ".join(f"{v:.6g}" for v in t.values), "params": t.user_attrs.get("params", ""),
               "flops": t.user_attrs.get("flops", ""), "reason": t.system_attrs.get("fail_reason", "")[:200]}
        row.update({f"p_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return rows


def write_outputs(study: optuna.Study, out_dir: Path, objectives: list[str], datamodule) -> None:
    """trials.csv, best_arch.yaml, plots, and the console summary."""
    rows = _rows(study)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(out_dir / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    counts = {s: sum(t.state.name == s for t in study.trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    print(f"\nstudy {study.study_name}: {len(study.trials)} trials: {counts['COMPLETE']} complete, "
          f"{counts['PRUNED']} pruned, {counts['FAIL']} refused or failed")
    if not complete:
        print("no complete trial yet: nothing to write as best_arch.yaml")
        return
    best = min(complete, key=lambda t: t.values[0]) if len(objectives) > 1 else study.best_trial
    header = (f"# Found by `src/search.py` (study {study.study_name}, trial {best.number}): validation error "
              f"{best.values[0]:.4f} after the trial's budget on {datamodule.name};\n# {best.user_attrs['params']:,} "
              f"parameters. Train it: python src/train.py arch=file arch.path=<this file> "
              f"optim.lr={best.params['lr']:.3g} model.reg={best.params['reg']:.3g} "
              f"data.batch_size={best.params['batch_size']}\n")
    arch = {"name": f"search_{study.study_name}_{best.number}", "layers": best.user_attrs["layers"]}
    (out_dir / "best_arch.yaml").write_text(header + yaml.safe_dump(arch, sort_keys=False))
    print(f"best: trial {best.number}, val error {best.values[0]:.4f}, {best.user_attrs['params']:,} parameters")
    print(build_network(best.user_attrs["layers"], datamodule.input_shape, datamodule.num_classes).table())
    _plots(study, out_dir, objectives)
    print(f"files: {out_dir}/trials.csv, best_arch.yaml, *.png")


def _plots(study: optuna.Study, out_dir: Path, objectives: list[str]) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Some regimes for parameter")  # few trials: said in the plot
    target = {"target": (lambda t: t.values[0]), "target_name": "val_err"} if len(objectives) > 1 else {}
    plots = {"optimization_history.png": lambda: ov.plot_optimization_history(study, **target)}
    if sum(t.state.name == "COMPLETE" for t in study.trials) > 1:  # importances need two finished trials
        plots["param_importances.png"] = lambda: ov.plot_param_importances(study, **target)
    if len(objectives) > 1:
        plots["pareto_front.png"] = lambda: ov.plot_pareto_front(study, target_names=objectives)
    for name, plot in plots.items():
        try:
            ax = plot()
            (ax.figure if hasattr(ax, "figure") else ax).savefig(out_dir / name, dpi=100, bbox_inches="tight")
        except (ValueError, RuntimeError, ZeroDivisionError) as err:  # e.g. importances with one distinct value
            log.warning("%s not drawn: %s", name, err)
        plt.close("all")


def run_search(cfg: DictConfig) -> optuna.Study:
    if not isinstance(cfg.n_trials, int) or isinstance(cfg.n_trials, bool) or cfg.n_trials < 1:
        raise ConfigError(f"n_trials = {cfg.n_trials!r}; expected a positive integer.")
    return Search(cfg).run()
