"""The project's own errors: each carries a message a user can act on without a traceback."""


class CnnlabError(Exception):
    """Base class: the entry points print these as one short message and exit with code 2."""


class ArchError(CnnlabError):
    """A layer list that cannot become a network (names the layer, the field and what is allowed)."""


class DataError(CnnlabError):
    """A data set that is missing, truncated or malformed (names the file and, where it applies, the row)."""


class ConfigError(CnnlabError):
    """A configuration value outside what the code accepts (names the key and what is allowed)."""
