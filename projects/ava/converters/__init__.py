"""AVA file converters: box CSVs -> per-keyframe records, frame lists, detection CSV writer."""
from .ava import (
    KeyframeRecord, box_iou, group_keyframes, keyframe_frame_index, merge_detected_boxes,
    read_ava_boxes, read_frame_list, write_detection_csv,
)

__all__ = [
    "KeyframeRecord", "box_iou", "group_keyframes", "keyframe_frame_index",
    "merge_detected_boxes", "read_ava_boxes", "read_frame_list", "write_detection_csv",
]
