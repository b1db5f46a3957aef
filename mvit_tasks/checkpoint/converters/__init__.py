"""Built-in checkpoint converters (one module per source codebase)."""
from .base import (
    CheckpointConverter,
    detect_source,
    get_converter,
    register_converter,
)

__all__ = ["CheckpointConverter", "detect_source", "get_converter", "register_converter"]
