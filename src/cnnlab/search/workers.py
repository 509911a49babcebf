"""Trials side by side (`n_workers=N`): each worker a process that asks the shared study for a trial, trains it and
tells the result, the cores divided among them. Crash-safe: a trial whose worker is gone (host and pid recorded) is
failed with the reason and its parameters queued again, so the same command after a crash ends with exactly
`n_trials` finished trials; a lock file makes "count, then ask" atomic among the workers of one machine."""

import contextlib
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

log = logging.getLogger("cnnlab.search")
WORKER = "worker"  # a trial's user attribute: host:pid of the process running it
REQUEUED = "requeued"  # a failed trial's user attribute: it did not count, its parameters were queued again


def counted(study: optuna.Study) -> list:
    """The trials that count against n_trials: finished (a failure with its reason too: an illegal list, a NaN) or on
    their way; not those that a crash stopped (they run again) or that were never run."""
    return [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED,
            TrialState.RUNNING) or (t.state == TrialState.FAIL and not t.user_attrs.get(REQUEUED))]


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def alive(worker: str) -> bool:
    """Whether a worker of this machine still runs (one of another machine is assumed to)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale(study: optuna.Study) -> int:
    """Trials left running by a worker that is gone: failed with the reason, their parameters queued again."""
    stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
             if WORKER in t.user_attrs and not alive(t.user_attrs[WORKER])]
    for trial in stale:
        reason = (f"its worker ({trial.user_attrs[WORKER]}) stopped while it ran (killed?); its parameters were "
                  "queued again")
        study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
        study._storage.set_trial_user_attr(trial._trial_id, REQUEUED, True)
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        log.warning("trial %d: %s", trial.number, reason)
    return len(stale)


@contextlib.contextmanager
def locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".ask.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def next_trial(study: optuna.Study, n_trials: int, folder: Path, deadline: float | None = None) -> optuna.Trial | None:
    """A trial for this worker, or None when the study has its `n_trials` finished or on their way (or the command's
    time is up)."""
    if deadline is not None and time.time() > deadline:
        return None
    with locked(folder):
        fail_stale(study)
        if len(counted(study)) >= n_trials:
            return None
        trial = study.ask()
        trial.set_user_attr(WORKER, me())
    if len([t for t in counted(study) if t.number <= trial.number]) > n_trials:
        # asked beside a worker of another machine: not this one's to train
        trial.set_user_attr("fail_reason", "asked beyond n_trials by a worker on another machine; not trained")
        trial.set_user_attr(REQUEUED, True)
        study.tell(trial, state=TrialState.FAIL)
        return None
    return trial


def work(search, study: optuna.Study, deadline: float | None = None) -> None:
    """This process's share: trials until the study has its n_trials (or `deadline`, a time.time(), has passed)."""
    n_trials, folder = search.options.n_trials, search.out_dir
    while (trial := next_trial(study, n_trials, folder, deadline)) is not None:
        search.tell(study, trial)


def spawn(main, plan, n_workers: int, deadline: float | None = None) -> None:
    """`n_workers` processes, each running `main(plan, index, n_workers, deadline)` on the study until it has its
    trials; a worker that dies leaves its trial to be failed and queued again by the others (or by the next run of
    the command)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited
    workers = [context.Process(target=main, args=(plan, k, n_workers, deadline), name=f"worker {k}")
               for k in range(n_workers)]
    for worker in workers:
        worker.start()
    log.info("%d workers (processes %s), %d cores each", n_workers, ", ".join(str(w.pid) for w in workers),
             cores(n_workers))
    running = list(workers)
    while running:
        for worker in running:
            worker.join(timeout=1)
        for worker in [w for w in running if w.exitcode is not None]:
            running.remove(worker)
            if worker.exitcode != 0:
                log.warning("%s (process %d) stopped with exit code %s; its trial is failed and queued again for "
                            "the other workers", worker.name, worker.pid, worker.exitcode)
        time.sleep(0.2)


def cores(n_workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // n_workers)
