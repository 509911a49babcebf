"""cnnlab: declare a CNN as a layer list in config; train, measure and search it."""

from cnnlab import resolvers  # noqa: F401  (registers the config resolvers before any config is composed)

__version__ = "0.1.0"
