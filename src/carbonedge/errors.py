"""Errors a user can act on.

Every error raised for bad input derives from :class:`CarbonEdgeError` and names the problem
(file, field, value). The CLI prints such errors on one line and exits with code 2.
"""


class CarbonEdgeError(Exception):
    """Base class for errors caused by the user's input or environment."""


class ConfigError(CarbonEdgeError):
    """A configuration file or value is invalid; the message names the file and field."""


class ModelError(CarbonEdgeError):
    """A model name, file or checkpoint cannot be used."""


class DataError(CarbonEdgeError):
    """An image or dataset cannot be read; the message names the file."""
