"""Label layout: inside the frame, lines and blocks never overlap, the ink stays in its block."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from mvit_tasks.utils.visualize import (
    MIN_SCALE, draw_label_blocks, label_style, layout_labels, text_colour,
)

LINES = ["watch (a person) 0.95", "talk to (e.g., self, a person) 0.80", "stand 0.55"]


def _boxes(h: int, w: int):
    """Persons side by side, one touching the top edge, one past the right edge, one whole."""
    return [(0.05 * w, 0.0, 0.3 * w, 0.9 * h), (0.2 * w, 0.1 * h, 0.5 * w, h),
            (0.8 * w, 0.3 * h, 1.2 * w, 0.8 * h), (0.0, 0.0, w, h), (0.4 * w, 0.5 * h,
                                                                    0.6 * w, 0.7 * h)]


def _inside(rect, h, w) -> bool:
    x1, y1, x2, y2 = rect
    return 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def _disjoint(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


@pytest.mark.parametrize("h,w", [(64, 96), (96, 64), (240, 320), (1080, 1920), (2160, 3840)])
def test_blocks_are_inside_the_frame_and_never_overlap(h, w):
    boxes = _boxes(h, w)
    blocks = layout_labels(boxes, [LINES] * len(boxes), h, w)
    placed = [b for b in blocks if b is not None]
    assert placed, "at least the first caption is shown"
    assert blocks[0] is not None and blocks[0].lines[0].startswith("wat")
    for b in placed:
        assert _inside(b.rect, h, w), (b.rect, h, w)
        for line_box in b.line_boxes:  # every line's ink box inside its block
            assert b.x <= line_box[0] and line_box[2] <= b.x + b.w
            assert b.y <= line_box[1] and line_box[3] <= b.y + b.h
        for p, q in itertools.combinations(b.line_boxes, 2):  # stacked lines do not overlap
            assert _disjoint(p, q), (p, q)
    for p, q in itertools.combinations(placed, 2):
        assert _disjoint(p.rect, q.rect), (p.rect, q.rect)
    if min(h, w) >= 240:  # room for every caption, whole
        assert all(b is not None and b.lines == tuple(LINES) for b in blocks)


def test_font_scales_with_the_frame_and_stays_readable():
    small, large = label_style(64, 96), label_style(1080, 1920)
    assert MIN_SCALE < small.scale < large.scale and large.scale == pytest.approx(1.2)
    assert large.thickness == 1 and label_style(2160, 3840).thickness == 2  # 4K: bolder
    big = layout_labels([(100, 300, 500, 1000)], [LINES], 1080, 1920)[0]
    tiny = layout_labels([(10, 30, 50, 60)], [LINES], 64, 96)[0]
    assert big.line_boxes[0][3] - big.line_boxes[0][1] > 3 * (
        tiny.line_boxes[0][3] - tiny.line_boxes[0][1])
    assert tiny.style.scale >= MIN_SCALE


@pytest.mark.parametrize("h,w", [(64, 96), (720, 1280)])
def test_the_drawn_ink_stays_inside_each_block(h, w):
    """What ``cv2.putText`` really inks, checked pixel by pixel against the layout."""
    boxes = _boxes(h, w)
    blocks = layout_labels(boxes, [LINES] * len(boxes), h, w)
    for b in blocks:
        if b is None:
            continue
        canvas = np.zeros((h, w, 3), np.uint8)
        draw_label_blocks(canvas, [b], [(0, 0, 0)])  # black fill: only the white ink shows
        ys, xs = np.nonzero(canvas.max(axis=2))
        assert len(xs) > 0
        x1, y1, x2, y2 = b.rect
        assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2
        background = np.zeros((h, w, 3), np.uint8)
        draw_label_blocks(background, [b], [(0, 255, 0)])  # the filled background
        edge = np.concatenate([background[y1, x1:x2], background[y2 - 1, x1:x2],
                               background[y1:y2, x1], background[y1:y2, x2 - 1]])
        assert (edge == (0, 255, 0)).all()  # the pad around the text is the fill colour
        assert not background[:, :x1].any() and not background[:y1].any()
        assert not background[:, x2:].any() and not background[y2:].any()


def test_too_long_lines_are_cut_and_crowded_blocks_dropped():
    long = ["x" * 200]
    block = layout_labels([(0, 0, 10, 10)], [long], 64, 96)[0]
    assert block.lines[0].endswith("..") and block.w <= 96
    many = layout_labels([(0, 0, 96, 64)] * 30, [LINES] * 30, 64, 96)
    assert any(b is None for b in many)  # no room: left out rather than overlapped
    assert layout_labels([(0, 0, 5, 5)], [[]], 64, 96) == [None]


def test_text_colour_contrasts_with_the_background():
    assert text_colour((0, 255, 0)) == (0, 0, 0) and text_colour((20, 20, 120)) == (255,) * 3
