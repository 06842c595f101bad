"""OVMS compatibility: handlers written for OVMS do ``from pyovms import Tensor`` unchanged."""

from ovserve.protocol.tensor import Tensor

__all__ = ["Tensor"]
