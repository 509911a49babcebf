"""cnnlab: declare a CNN as a layer list in config; train, measure and search it."""

import time as _time

STARTED = _time.time()  # the program's start as near as Python shows it: the entry script imports cnnlab first

from cnnlab import resolvers  # noqa: E402, F401  (registers the config resolvers before any config is composed)

__version__ = "0.1.0"
