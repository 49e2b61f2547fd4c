"""The paper's three CNNs in plain PyTorch, users' own models and MAC counting (Section IV.A.3).

Importing this package does not import torch; :func:`build_model` and :func:`count_macs` do.
"""

from carbonedge.models.macs import count_macs
from carbonedge.models.registry import (
    MODEL_NAMES,
    ModelInfo,
    build_model,
    describe_model,
    load_weights,
)

__all__ = [
    "MODEL_NAMES",
    "ModelInfo",
    "build_model",
    "count_macs",
    "describe_model",
    "load_weights",
]
