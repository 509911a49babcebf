"""What a search leaves in its study folder: trials.csv, best_arch.yaml, top_layer_lists.txt, plots, and the
console summary. Everything is read back from the study, so any agent (and a resumed study) gets the same."""

import csv
import logging
from pathlib import Path
from typing import Any

import optuna
import yaml

from cnnlab.layers import build_network
from cnnlab.layers.spec import compact
from cnnlab.search.agents.evolution import parent_of

log = logging.getLogger("cnnlab.search")


def _rows(study: optuna.Study, walks_layers: bool) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else ""
        row = {"number": t.number, "state": t.state.name, "values": "" if t.values is None else
               " ".join(f"{v:.6g}" for v in t.values), "epochs": t.user_attrs.get("epochs", ""),
               "params": t.user_attrs.get("params", ""), "flops": t.user_attrs.get("flops", ""), "seconds": duration,
               "parent": "" if parent_of(t) is None else parent_of(t), "retry_of": t.user_attrs.get("retry_of", ""),
               "worker": t.user_attrs.get("worker", ""),
               "layers": compact(t.user_attrs["layers"]) if "layers" in t.user_attrs else "",
               "reason": (t.user_attrs.get("fail_reason") or t.system_attrs.get("fail_reason", ""))[:200]}
        if not walks_layers:  # a layer walk's parameters are its states: the layers column says it all
            row.update({f"p_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return rows


def write_outputs(study: optuna.Study, out_dir: Path, objectives: list[str], datamodule, space,
                  stages: list[tuple[float, int]] | None = None, plan=None) -> None:
    """trials.csv, best_arch.yaml, the hand-over experiment, top_layer_lists.txt, plots, and the console summary."""
    rows = _rows(study, space.walks_layers)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(out_dir / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    counts = {s: sum(t.state.name == s for t in study.trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    print(f"\nstudy {study.study_name}: {len(study.trials)} trials: {counts['COMPLETE']} complete, "
          f"{counts['PRUNED']} pruned, {counts['FAIL']} refused or failed")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    spent = sum(int(t.user_attrs.get("epochs", 0)) for t in finished)
    if finished:
        full = len(finished) * space.epochs
        print(f"epochs trained: {spent} of {full} ({len(finished)} finished trials x {space.epochs} epochs: "
              f"{spent / full:.0%})")
    if not complete:
        print("no complete trial yet: nothing to hand over")
        return
    ranked = sorted(complete, key=lambda t: t.values[0])
    best = ranked[0]
    arch = {"name": f"search_{study.study_name}_{best.number}", "layers": best.user_attrs["layers"]}
    about = (f"# Found by `src/search.py` (study {study.study_name}, trial {best.number}): validation error "
             f"{best.values[0]:.4f} after {best.user_attrs.get('epochs', space.epochs)} epochs on {datamodule.name}; "
             f"{best.user_attrs['params']:,} parameters.\n")
    (out_dir / "best_arch.yaml").write_text(about + "# The whole recipe: experiment/best_experiment.yaml.\n"
                                            + yaml.safe_dump(arch, sort_keys=False))
    top = [f"{i + 1:2d}. trial {t.number:4d}  val error {t.values[0]:.4f}  {t.user_attrs['params']:>10,} params  "
           f"{compact(t.user_attrs['layers'])}" for i, t in enumerate(ranked[:10])]
    (out_dir / "top_layer_lists.txt").write_text("\n".join(top) + "\n")
    print(f"best: trial {best.number}, val error {best.values[0]:.4f}, {best.user_attrs['params']:,} parameters")
    print(build_network(best.user_attrs["layers"], datamodule.input_shape, datamodule.num_classes).table())
    if plan is not None:
        _hand_over(best, out_dir, about, plan)
    _plots(study, out_dir, objectives, importances=not space.walks_layers)
    if stages:
        plot_epsilon_stages(study, stages, out_dir / "epsilon_rewards.png")
    print(f"files: {out_dir}/trials.csv, best_arch.yaml, experiment/best_experiment.yaml, top_layer_lists.txt, *.png")


def _hand_over(best, out_dir: Path, about: str, plan) -> None:
    import torch

    from cnnlab.search import handover

    config_file = out_dir / "trials" / str(best.number) / "config.yaml"
    if not config_file.is_file():
        return
    config = yaml.safe_load(config_file.read_text())
    choices = best.user_attrs.get("choices") or plan.choices
    epochs = config["trainer"]["max_epochs"]
    header = (about + f"# Searched by: {plan.command}\n# At the trial's fidelity (trainer.max_epochs={epochs}, seed "
              f"{config['seed']}, {torch.get_num_threads()} torch threads) this gives the trial's validation accuracy; "
              "train it longer with trainer.max_epochs=N.\n")
    command = handover.write(out_dir, config, choices, header)
    print(f"train the winner: {command}")
    print(f"  (at full length: add trainer.max_epochs=N; to ship it, copy {out_dir}/experiment/best_experiment.yaml "
          "to conf/experiment/<name>.yaml)")


def _plots(study: optuna.Study, out_dir: Path, objectives: list[str], importances: bool) -> None:
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Some regimes for parameter")  # few trials: said in the plot
    target = {"target": (lambda t: t.values[0]), "target_name": "val_err"} if len(objectives) > 1 else {}
    plots = {"optimization_history.png": lambda: ov.plot_optimization_history(study, **target)}
    if importances and sum(t.state.name == "COMPLETE" for t in study.trials) > 1:  # needs two finished trials
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


def stage_rewards(study: optuna.Study, stages: list[tuple[float, int]]) -> list[tuple[float, int, list[float]]]:
    """(epsilon, trials in the stage, validation accuracies of its complete trials) per stage."""
    out, start = [], 0
    by_number = {t.number: t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    for eps, n in stages:
        accs = [1 - by_number[k].values[0] for k in range(start, start + n) if k in by_number]
        out.append((eps, n, accs))
        start += n
    return out


def plot_epsilon_stages(study: optuna.Study, stages: list[tuple[float, int]], path: Path) -> None:
    """MetaQNN's figure: the epsilon schedule, and the mean validation accuracy of the lists drawn in each stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rewards = stage_rewards(study, stages)
    fig, ax = plt.subplots(figsize=(7, 4))
    x = range(len(rewards))
    means = [sum(a) / len(a) if a else float("nan") for _, _, a in rewards]
    ax.bar(x, [100 * m for m in means], color="tab:blue", alpha=0.7, label="mean validation accuracy (%)")
    for i, (_, _, accs) in enumerate(rewards):
        ax.plot([i] * len(accs), [100 * a for a in accs], "k.", ms=3)
    ax.set_xticks(list(x), [f"ε={eps:g}\n{n} trials" for eps, n, _ in rewards], fontsize=7)
    finite = [m for m in means if m == m]
    if finite:
        low = min(100 * min(a) for _, _, a in rewards if a)
        ax.set_ylim(max(0, low - 5), 100)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{study.study_name}: reward per ε stage\n(dots: each complete trial)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
