"""Legible labels on images of any size: a pure layout function and OpenCV drawing.

:func:`layout_labels` places one block of text lines per anchor box (a person, a detection):
the font scales with the frame (:func:`label_style`), lines are stacked with the line height
``cv2.getTextSize`` measures, each block is shifted inside the frame (never clipped) and away
from the blocks already placed (never overlapping). What cannot fit is left out in this order:
characters at the end of a line too wide for the frame (``..`` marks the cut), then a block's
last lines, then the block (its box is still drawn). :func:`draw_label_blocks` draws the
blocks on a filled background. The layout depends only on the boxes, texts and frame size, so
a video computes it once per keyframe and draws it on every frame.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX
MIN_SCALE = 0.25  # smallest font scale (~6 px capitals): below, text is truncated instead
Box = Tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
Colour = Tuple[int, int, int]
Measure = Callable[[str, float, int], Tuple[int, int, int]]  # text, scale, thickness -> w, h, base


@dataclasses.dataclass(frozen=True)
class LabelStyle:
    """Font ``scale`` and stroke ``thickness`` (cv2 Hershey simplex), ``pad`` pixels of
    background around the text, ``gap`` pixels between lines."""

    scale: float
    thickness: int
    pad: int
    gap: int


@dataclasses.dataclass(frozen=True)
class LabelBlock:
    """A placed block: background rectangle ``[x, x + w) x [y, y + h)`` (inside the frame) and
    its ``lines``, line ``i`` drawn with its text origin (bottom-left) at ``(x + pad,
    origins[i])``; ``line_boxes[i]`` is that line's ink box ``(x1, y1, x2, y2)``, exclusive."""

    x: int
    y: int
    w: int
    h: int
    lines: Tuple[str, ...]
    origins: Tuple[int, ...]
    line_boxes: Tuple[Tuple[int, int, int, int], ...]
    style: LabelStyle

    @property
    def rect(self) -> Tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)``, exclusive."""
        return self.x, self.y, self.x + self.w, self.y + self.h


def cv2_measure(text: str, scale: float, thickness: int) -> Tuple[int, int, int]:
    """``(width, height above the baseline, depth below it)`` of ``text`` in pixels, with the
    stroke's half-thickness added on every side (what ``cv2.putText`` inks)."""
    import cv2

    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    return w + thickness, h + (thickness + 1) // 2, base + (thickness + 1) // 2


def label_style(height: int, width: int) -> LabelStyle:
    """The style of a ``height x width`` frame: scale ``short side / 900`` (0.4 at 360 p, 1.2 at
    1080 p) within ``[MIN_SCALE + 0.05, 3]``, thickness 1 below scale 1, then 2, 3..."""
    scale = min(3.0, max(MIN_SCALE + 0.05, min(height, width) / 900.0))
    return LabelStyle(scale=scale, thickness=max(1, int(scale)), pad=max(1, round(2 * scale)),
                      gap=max(1, round(3 * scale)))


def _fit_width(lines: Sequence[str], style: LabelStyle, width: int,
               measure: Measure) -> Tuple[LabelStyle, List[str]]:
    """Shrink the scale (down to :data:`MIN_SCALE`) until the widest line fits in ``width``,
    then cut the lines that still do not."""
    avail = width - 2 * style.pad
    while style.scale > MIN_SCALE and lines and \
            max(measure(s, style.scale, style.thickness)[0] for s in lines) > avail:
        style = dataclasses.replace(style, scale=max(MIN_SCALE, style.scale * 0.85), thickness=1)
    out = []
    for s in lines:
        while len(s) > 1 and measure(s, style.scale, style.thickness)[0] > avail:
            s = s[:-3] + ".." if len(s) > 3 else s[:-1]
        out.append(s)
    return style, out


def _overlaps(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _free_spot(box: Box, bw: int, bh: int, placed: Sequence[Tuple[int, int, int, int]],
               height: int, width: int, step: int) -> Optional[Tuple[int, int]]:
    """Top-left of a ``bw x bh`` block inside the frame that overlaps no ``placed`` rect:
    above the box, inside its top, below it, inside its bottom (each shifted into the frame),
    else the free grid position nearest to "above the box"."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)

    def inside(x: int, y: int) -> Tuple[int, int]:
        return min(max(x, 0), width - bw), min(max(y, 0), height - bh)

    def free(x: int, y: int) -> bool:
        return not any(_overlaps((x, y, x + bw, y + bh), r) for r in placed)

    for x, y in ((x1, y1 - bh), (x1, y1), (x1, y2), (x1, y2 - bh)):
        x, y = inside(x, y)
        if free(x, y):
            return x, y
    px, py = inside(x1, y1 - bh)
    xs = range(0, width - bw + 1, max(step, bw // 4))
    ys = range(0, height - bh + 1, step)
    grid = sorted(((x, y) for x in [*xs, width - bw] for y in [*ys, height - bh]),
                  key=lambda p: (abs(p[1] - py) + abs(p[0] - px), p[1], p[0]))
    return next(((x, y) for x, y in grid if free(x, y)), None)


def layout_labels(boxes: Sequence[Box], texts: Sequence[Sequence[str]], height: int,
                  width: int, style: Optional[LabelStyle] = None,
                  measure: Measure = cv2_measure) -> List[Optional[LabelBlock]]:
    """One :class:`LabelBlock` (or ``None``: no text, or no room) per box, placed in order.

    Args:
        boxes: ``x1, y1, x2, y2`` pixel boxes the blocks belong to (may exceed the frame).
        texts: the lines of each box's block (earlier lines are kept first).
        height, width: the frame size.
        style: the font (default :func:`label_style` of the frame).
        measure: text measurement (default OpenCV's, :func:`cv2_measure`).

    Every returned block lies inside the frame, its lines do not overlap one another, and no
    two blocks overlap.
    """
    style = style or label_style(height, width)
    style, _ = _fit_width([s for lines in texts for s in lines], style, width, measure)
    placed: List[Tuple[int, int, int, int]] = []
    out: List[Optional[LabelBlock]] = []
    for box, lines in zip(boxes, texts):
        lines = _fit_width(list(lines), style, width, measure)[1]
        block = None
        for n in range(len(lines), 0, -1):
            block = _place(box, lines[:n], style, placed, height, width, measure)
            if block is not None:
                placed.append(block.rect)
                break
        out.append(block)
    return out


def _place(box: Box, lines: Sequence[str], style: LabelStyle,
           placed: Sequence[Tuple[int, int, int, int]], height: int, width: int,
           measure: Measure) -> Optional[LabelBlock]:
    sizes = [measure(s, style.scale, style.thickness) for s in lines]
    asc = max(h for _, h, _ in sizes)
    line_h = asc + max(d for _, _, d in sizes) + style.gap
    bw = max(w for w, _, _ in sizes) + 2 * style.pad
    bh = len(lines) * line_h - style.gap + 2 * style.pad
    if bw > width or bh > height:
        return None
    spot = _free_spot(box, bw, bh, placed, height, width, step=max(2, line_h // 2))
    if spot is None:
        return None
    x, y = spot
    origins = tuple(y + style.pad + i * line_h + asc for i in range(len(lines)))
    line_boxes = tuple((x + style.pad, o - h, x + style.pad + w, o + d)
                       for o, (w, h, d) in zip(origins, sizes))
    return LabelBlock(x, y, bw, bh, tuple(lines), origins, line_boxes, style)


def text_colour(background: Colour) -> Colour:
    """Black on light backgrounds, white on dark ones (Rec. 601 luma, either channel order)."""
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


def draw_label_blocks(image: np.ndarray, blocks: Sequence[Optional[LabelBlock]],
                      colours: Sequence[Colour]) -> np.ndarray:
    """Draw each block on ``image`` (``H x W x 3`` uint8, in place; returned): a filled
    rectangle of its colour, then its lines in black or white (:func:`text_colour`)."""
    import cv2

    for block, colour in zip(blocks, colours):
        if block is None:
            continue
        x1, y1, x2, y2 = block.rect
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
        ink = text_colour(colour)
        for line, origin in zip(block.lines, block.origins):
            cv2.putText(image, line, (x1 + block.style.pad + block.style.thickness // 2, origin),
                        FONT, block.style.scale, ink, block.style.thickness, cv2.LINE_AA)
    return image


def palette(n: int) -> List[Colour]:
    """``n`` distinct bright colours (evenly spaced hues), as ``(r, g, b)`` tuples."""
    import colorsys

    return [tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(i / max(n, 1), 0.85, 1.0))
            for i in range(n)]
