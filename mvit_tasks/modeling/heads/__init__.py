from .classification import ClipClassificationHead

__all__ = ["ClipClassificationHead"]
