"""The confusion matrix a practitioner reads: percentages in the cells (small class counts),
the video count of each class, a colour bar; no cell text for many classes."""
from __future__ import annotations

import numpy as np

from mvit_tasks.projects.video_classification.evaluator import (
    ANNOTATE_MAX_CLASSES,
    confusion_figure,
    write_classification_reports,
)
from mvit_tasks.projects.video_classification.metrics import VideoPredictions


def _cells(fig):
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text()
            for t in fig.axes[0].texts}


def test_cells_show_row_percentages_and_rows_their_counts():
    cm = np.array([[8, 2, 0], [1, 0, 3], [0, 0, 0]])  # rows: ground truth
    fig = confusion_figure(cm, ["walk", "run", "jump"])
    assert _cells(fig) == {(0, 0): "80", (0, 1): "20", (1, 0): "25", (1, 2): "75"}
    white = [t.get_text() for t in fig.axes[0].texts if t.get_color() == "white"]
    assert white == ["80", "75"]  # dark cells get white text
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["walk (10)", "run (4)", "jump (0)"]
    assert len(fig.axes) == 2  # the matrix and its colour bar


def test_tiny_shares_and_many_classes():
    cm = np.zeros((3, 3), dtype=np.int64)
    cm[0, 0], cm[0, 1] = 999, 1
    assert _cells(confusion_figure(cm, ["a", "b", "c"]))[(0, 1)] == "<1"
    k = ANNOTATE_MAX_CLASSES + 1
    big = confusion_figure(np.eye(k, dtype=np.int64) * 3, [f"c{i}" for i in range(k)])
    assert len(big.axes[0].texts) == 0 and len(big.axes) == 2  # no numbers, a colour bar


def test_the_report_png_is_written(tmp_path):
    videos = VideoPredictions(video_id=np.array(["a", "b", "c"]), label=np.array([0, 1, 1]),
                              scores=np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
                              num_views=np.ones(3, dtype=np.int64))
    paths = write_classification_reports(str(tmp_path), videos, 2, ["x", "y"])
    assert open(paths[1], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
