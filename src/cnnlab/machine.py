"""What this machine has, for checks that compare a run's needs with it."""

import os


def cores(share: int = 1) -> int:
    """The cores this process may use (its affinity), divided among `share` processes; at least one."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, usable // share)


def memory_bytes() -> int:
    """Physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
