"""Importing this module registers every built-in converter."""
import importlib

for _mod in ("slowfast", "torchvision", "timm", "pytorchvideo", "detectron2"):
    try:
        importlib.import_module(f"{__package__}.{_mod}")
    except ModuleNotFoundError as e:  # a converter module not written yet
        if e.name != f"{__package__}.{_mod}":
            raise
