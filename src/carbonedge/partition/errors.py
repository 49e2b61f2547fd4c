"""The partitioner's user-facing error."""

from carbonedge.errors import CarbonEdgeError


class PartitionError(CarbonEdgeError):
    """A model cannot be cut, or a partition request is invalid; the message names the value."""
