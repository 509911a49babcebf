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
        wall = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else ""
        attrs = t.user_attrs
        row = {"number": t.number, "state": t.state.name,
               "values": "" if t.values is None else " ".join(f"{v:.6g}" for v in t.values),
               **{k: attrs.get(k, "") for k in ("epochs", "steps", "seconds", "images_per_s")}, "wall_s": wall,
               **{k: attrs.get(k, "") for k in ("params", "flops")},
               "parent": "" if parent_of(t) is None else parent_of(t),
               **{k: attrs.get(k, "") for k in ("retry_of", "worker")},
               "layers": compact(attrs["layers"]) if "layers" in attrs else "",
               "reason": (attrs.get("fail_reason") or t.system_attrs.get("fail_reason", ""))[:200]}
        if not walks_layers:  # a layer walk's parameters are its states: the layers column says it all
            row.update({f"p_{k}": v for k, v in t.params.items()})
        rows.append(row)
    return rows


def write_outputs(study: optuna.Study, search, confirmed=None) -> None:
    """trials.csv, the console summary, the hand-over (the winner, and with costs every trial of the Pareto front),
    best_arch.yaml, top_layer_lists.txt and plots. A study whose every trial failed ends the command with its
    reason."""
    from cnnlab.checks.errors import ConfigError
    from cnnlab.search import handover

    out_dir, space, unit, budget = search.out_dir, search.space, search.unit, search.budget
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
    if finished:
        spent, full = sum(float(t.user_attrs.get(unit, 0)) for t in finished), len(finished) * budget
        print(f"{unit} trained: {spent:,.0f} of {full:,.0f} ({len(finished)} finished trials x {budget:g} {unit}: "
              f"{spent / full:.0%})")
    if not complete:
        failed = [t for t in study.trials if t.state.name == "FAIL" and not t.user_attrs.get("requeued")]
        if failed and not finished:
            reason = failed[0].user_attrs.get("fail_reason", "?")
            raise ConfigError(f"every trial of study {study.study_name} failed ({len(failed)}; trial "
                              f"{failed[0].number}: {reason}); see {out_dir / 'trials.csv'}.")
        print("no complete trial yet: nothing to hand over")
        return
    ranked = sorted(complete, key=lambda t: t.values[0])
    best = next(t for t in complete if t.number == confirmed[0].number) if confirmed else ranked[0]
    about = (f"# Found by `src/search.py` (study {study.study_name}, trial {best.number}): validation error "
             f"{best.values[0]:.4f} after {best.user_attrs.get(unit, budget)} {unit} on {search.datamodule.name}; "
             f"{best.user_attrs['params']:,} parameters.\n")
    if confirmed:
        about += "# Confirmed over seeds (validation error, best mean first): " + "; ".join(
            f"trial {c.number} {c.text()}" for c in confirmed) + ".\n"
    arch = {"name": f"search_{study.study_name}_{best.number}", "layers": best.user_attrs["layers"]}
    (out_dir / "best_arch.yaml").write_text(about + "# The whole recipe: experiment/best_experiment.yaml.\n"
                                            + yaml.safe_dump(arch, sort_keys=False))
    top = [f"{i + 1:2d}. trial {t.number:4d}  val error {t.values[0]:.4f}  {t.user_attrs['params']:>10,} params  "
           f"{compact(t.user_attrs['layers'])}" for i, t in enumerate(ranked[:10])]
    (out_dir / "top_layer_lists.txt").write_text("\n".join(top) + "\n")
    print(f"best: trial {best.number}, val error {best.values[0]:.4f}" + (f" (confirmed: {confirmed[0].text()})"
          if confirmed else "") + f", {best.user_attrs['params']:,} parameters")
    print(build_network(best.user_attrs["layers"], search.datamodule.input_shape,
                        search.datamodule.num_classes).table())
    command = handover.write_trial(search, best, about, "best_experiment")
    if command:
        print(f"train the winner: {command}")
        print(f"  (at full length: add trainer.max_epochs=N trainer.max_steps=-1; to ship it, copy "
              f"{out_dir}/experiment/best_experiment.yaml to conf/experiment/<name>.yaml)")
    objectives = search.objectives
    if len(objectives) > 1:  # every point of the cost front, with the command that trains it
        front = sorted(study.best_trials, key=lambda t: t.values[0])
        print(f"Pareto front ({', '.join(objectives)}): {len(front)} trials")
        for t in front:
            values = ", ".join(f"{o} {v:.4g}" for o, v in zip(objectives, t.values))
            print(f"  trial {t.number:4d}  {values}  {handover.write_trial(search, t) or ''}")
    _plots(study, out_dir, objectives, importances=not space.walks_layers)
    stages = getattr(search.sampler, "stages", None)
    if stages:
        plot_epsilon_stages(study, stages, out_dir / "epsilon_rewards.png")
    print(f"files: {out_dir}/trials.csv, best_arch.yaml, experiment/, top_layer_lists.txt, *.png"
          + (", confirm.csv" if confirmed else ""))


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
