"""Necks: multi-scale backbone features -> the maps a head consumes."""
from .fpn import FPN, FPNBackbone, get_norm_layer

__all__ = ["FPN", "FPNBackbone", "get_norm_layer"]
