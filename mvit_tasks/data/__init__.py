"""Data: video decoding / writing (PyAV) and the generated demo dataset."""
from .synthetic import CLASSES, generate_moving_shapes, read_labels, read_manifest
from .video_io import VideoDecodeError, read_clip, write_video

__all__ = [
    "CLASSES",
    "VideoDecodeError",
    "generate_moving_shapes",
    "read_clip",
    "read_labels",
    "read_manifest",
    "write_video",
]
