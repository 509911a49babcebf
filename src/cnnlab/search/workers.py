"""Trials side by side: `n_workers` processes on this machine, or the same command on several machines sharing one
database; each asks the study for a trial, trains it and tells the result, none waiting for another.

Crash-safe: a trial whose worker is gone is failed with the reason and its parameters queued again, so the same
command after a crash ends with exactly `n_trials` finished trials. On one machine (the study folder's journal) a
worker is gone when its process is (host and pid recorded); with a database, when it has not beaten its heartbeat
for `grace_s` seconds, whichever machine it ran on. A lock file makes "count, then ask" atomic on one machine; a
trial asked beyond the budget anyway (workers on several machines) is failed before it trains."""

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from cnnlab.machine import cores

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


def by_ctrl_c(err: BaseException) -> bool:
    """Ctrl-C, or an error raised while handling it: Lightning's exit(1) inside fit, or Optuna's journal lock
    interrupted inside its release (FileNotFoundError)."""
    return isinstance(err, KeyboardInterrupt) or isinstance(err.__context__, KeyboardInterrupt)


def requeue(study: optuna.Study, trial, reason: str) -> None:
    """A trial its worker could not finish: failed with `reason`, its parameters queued again as a new trial."""
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"{reason}; its parameters were queued again")
    study._storage.set_trial_user_attr(trial._trial_id, REQUEUED, True)
    if trial.state == TrialState.RUNNING:
        study.tell(trial.number, state=TrialState.FAIL)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
    log.warning("trial %d: %s; its parameters were queued again", trial.number, reason)


def beats(study: optuna.Study) -> bool:
    """Whether the study's storage keeps heartbeats (a database made with a heartbeat interval; a study wraps its
    RDBStorage in a cache, so the storage's class says nothing)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def fail_stale(study: optuna.Study) -> int:
    """Trials left running by a worker that is gone: failed with the reason, their parameters queued again. With a
    database, a worker silent beyond the grace period, whichever machine it ran on (Optuna's own fail_stale_trials
    fails a trial before its callback runs, when its reason can no longer be written: its query is used instead);
    on one machine, a worker whose process is gone."""
    if beats(study):
        storage = study._storage
        ids = set(storage._get_stale_trial_ids(study._study_id))
        stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t._trial_id in ids]
        why = "was silent for longer than its grace period, grace_s (killed, or its machine lost)"
    else:
        stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                 if WORKER in t.user_attrs and not alive(t.user_attrs[WORKER])]
        why = "stopped while it ran (killed?)"
    for trial in stale:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # another worker was first
            requeue(study, trial, f"its worker ({trial.user_attrs.get(WORKER, '?')}) {why}")
    return len(stale)


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial):
    """While a trial trains, a thread beats its heartbeat (Optuna beats only inside study.optimize, and cnnlab asks
    and tells): other workers see it alive, and fail it once it stops."""
    if not beats(study):
        yield
        return
    storage, stop = study._storage, threading.Event()
    storage.record_heartbeat(trial._trial_id)

    def beat() -> None:
        while not stop.wait(storage.get_heartbeat_interval()):
            with contextlib.suppress(Exception):  # a database hiccup: the next beat tries again
                storage.record_heartbeat(trial._trial_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
        if beats(study):
            study._storage.record_heartbeat(trial._trial_id)
    if len([t for t in counted(study) if t.number <= trial.number]) > n_trials:
        # asked beside a worker of another machine: not this one's to train
        trial.set_user_attr("fail_reason", "asked beyond n_trials by a worker on another machine; not trained")
        trial.set_user_attr(REQUEUED, True)
        study.tell(trial, state=TrialState.FAIL)
        return None
    return trial


def work(search, study: optuna.Study, deadline: float | None = None) -> None:
    """This process's share: trials until the study has its n_trials (or `deadline`, a time.time(), has passed).
    At the end it waits while other workers' trials run: one that falls silent is failed and run again here, so the
    study never ends with a trial left running."""
    n_trials, folder = search.options.n_trials, search.out_dir
    while True:
        trial = next_trial(study, n_trials, folder, deadline)
        if trial is not None:
            search.tell(study, trial)
        elif (deadline is None or time.time() < deadline) and study.get_trials(deepcopy=False,
                                                                             states=(TrialState.RUNNING,)):
            time.sleep(study._storage.get_heartbeat_interval() if beats(study) else 2)
        else:
            return


def spawn(main, plan, n_workers: int, deadline: float | None = None) -> None:
    """`n_workers` processes, each running `main(plan, index, n_workers, deadline)` on the study until it has its
    trials; a worker that dies leaves its trial to be failed and queued again by the others (or by the next run of
    the command). Ctrl-C reaches every worker (one process group): each queues its trial again and stops."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited
    workers = [context.Process(target=main, args=(plan, k, n_workers, deadline), name=f"worker {k}")
               for k in range(n_workers)]
    log.info("starting %d workers, %d cores each (each reads the data set before its first trial)", n_workers,
             cores(n_workers))
    for worker in workers:
        worker.start()
    running = list(workers)
    try:
        while running:
            for worker in running:
                worker.join(timeout=1)
            for worker in [w for w in running if w.exitcode is not None]:
                running.remove(worker)
                if worker.exitcode not in (0, 130):
                    log.warning("%s (process %d) stopped with exit code %s; its trial is failed and queued again for "
                                "the other workers", worker.name, worker.pid, worker.exitcode)
    except KeyboardInterrupt:
        for worker in running:
            worker.join(timeout=60)  # each is queuing its trial again
        raise
