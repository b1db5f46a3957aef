"""Importing this module registers every built-in converter."""
from . import detectron2, pytorchvideo, slowfast, timm, torchvision  # noqa: F401
