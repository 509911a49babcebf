"""Loggers (`logger=` in conf/logger/): one adapter per kind, in its own module here, saying what its config needs
(a package, writable folders), how a sweep job's run is named, and what it receives: the whole config when the run
starts, the report (figures, texts, files) when the test loop ends. A new logger is one adapter and its YAML."""

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnlab.checks.fields import OptionError
from cnnlab.checks.places import writable
from cnnlab.registry import load


class Adapter:
    """Subclass with `target` (the `_target_` of its config) and override what the logger receives."""

    target: str = ""
    package: str | None = None  # the module it needs, and the pip extra of cnnlab that installs it
    extra: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.target:
            _ADAPTERS[cls.target] = cls()

    def check(self, name: str, entry: dict[str, Any], run_dir: Path, sweep: tuple[Path, str] | None) -> None:
        """The entry checked and completed before anything is built (a sweep job's run named); changes `entry`."""
        self.ready(name, entry)
        if entry.get("save_dir"):
            writable(Path(entry["save_dir"]), f"logger.{name}.save_dir")

    def ready(self, name: str, entry: Mapping[str, Any]) -> None:
        """What the logger needs from the machine (its package, an account), checked once before a sweep too."""
        if self.package is not None:
            try:
                importlib.import_module(self.package)
            except ImportError as err:
                install = f"pip install -e '.[{self.extra}]'" if self.extra else f"pip install {self.package}"
                raise OptionError(f"logger={name} needs the '{self.package}' package, which cannot be imported "
                                  f"({err}); install it with {install}.") from None

    def start(self, logger) -> None:
        """In the launching process, before any fork or spawn."""

    def send_config(self, logger, config: dict[str, Any]) -> None:
        """The whole resolved config, when training (or evaluation) starts."""

    def send_report(self, logger, report, images: dict[str, bytes], texts: dict[str, str], files: list[Path],
                    step: int) -> None:
        """The report: figures as PNG bytes, texts (classification report, layer table), the report files."""

    def fit_end(self, logger, best: list[str], config: dict[str, Any]) -> None:
        """Training is over; `best`: the best checkpoints."""

    def finish(self, logger) -> None:
        """The run is over (Lightning finalizes the loggers it knows how to)."""


_ADAPTERS: dict[str, Adapter] = {}


def adapters() -> dict[str, Adapter]:
    """Every logger adapter, by its config's `_target_`: each module of this package registers its own."""
    load(__name__)
    return dict(_ADAPTERS)


def read_loggers(loggers: Mapping[str, Any] | None, run_dir: Path,
                 sweep: tuple[Path, str] | None = None) -> dict[str, dict[str, Any]]:
    """The logger entries, each checked by its adapter and ready to instantiate."""
    if loggers is not None and not isinstance(loggers, Mapping):
        raise OptionError(f"logger = {loggers!r}; expected logger=<name> (csv, tensorboard, mlflow, wandb), a list "
                          "of them, or ~logger for none.")
    entries = {name: dict(entry) for name, entry in (loggers or {}).items()}
    found = adapters()
    for name, entry in entries.items():
        target = entry.get("_target_")
        if target not in found:
            raise OptionError(f"logger.{name}._target_ = {target!r}; expected one of cnnlab's logger configs "
                              "(conf/logger/: csv, tensorboard, mlflow, wandb).")
        found[target].check(name, entry, run_dir, sweep)
    return entries


def ready(loggers: Any) -> None:
    """Each logger's needs from the machine, before a sweep's first job (a missing account would fail every job)."""
    for name, entry in (loggers if isinstance(loggers, Mapping) else {}).items():
        adapter = adapters().get(entry.get("_target_") if isinstance(entry, Mapping) else None)
        if adapter is not None:
            adapter.ready(name, entry)


def adapters_of(entries: dict[str, dict[str, Any]]) -> list[Adapter]:
    """The adapter of each entry, in order."""
    found = adapters()
    return [found[entry["_target_"]] for entry in entries.values()]
