"""The run's report: one value (`value`), its figures, and its sinks (files, console; dashboards: cnnlab.dashboards)."""
