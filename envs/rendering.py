"""Small RGB frames of the envs' state, drawn with numpy (``render_mode="rgb_array"``).

Frames are for looking at an episode or recording it (Gymnasium's ``RecordVideo``, SB3's
``VecVideoRecorder``); SB3's ``make_vec_env`` asks every env for ``rgb_array`` by default.
Drawing reads the env's state and never touches its random streams, so rendering cannot change
a trajectory. Everything is bars and columns of pixels, no plotting library, so a frame costs
far less than an env step.
"""

from __future__ import annotations

import numpy as np

HEIGHT, WIDTH = 200, 320
GREY = (215, 215, 215)
DARK = (40, 40, 40)
GREEN = (46, 160, 67)
RED = (210, 60, 50)
BLUE = (40, 90, 220)


def canvas(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A white (height, width, 3) uint8 frame."""
    return np.full((height, width, 3), 255, dtype=np.uint8)


def fill(img: np.ndarray, top: int, bottom: int, left: int, right: int, color) -> None:
    """Paint rows [top, bottom) and columns [left, right) (clipped to the frame)."""
    h, w = img.shape[:2]
    top, bottom = max(0, min(top, h)), max(0, min(bottom, h))
    left, right = max(0, min(left, w)), max(0, min(right, w))
    if top < bottom and left < right:
        img[top:bottom, left:right] = color


def progress(img: np.ndarray, top: int, height: int, fraction: float, color) -> None:
    """A full-width strip, grey, with its first `fraction` in `color`."""
    w = img.shape[1]
    fill(img, top, top + height, 0, w, GREY)
    fill(img, top, top + height, 0, int(round(np.clip(fraction, 0.0, 1.0) * w)), color)


def _span(j: int, n: int, width: int) -> tuple[int, int]:
    """Columns [left, right) of bar j of n side by side across `width`, a pixel apart (at
    least one wide)."""
    left, right = j * width // n, (j + 1) * width // n - 1
    return left, max(right, left + 1)


def bar(img: np.ndarray, top: int, bottom: int, j: int, n: int, height: float, color) -> None:
    """Bar j of n, `height` a fraction of the band [top, bottom) (clipped to [0, 1]), standing
    on the band's bottom edge."""
    left, right = _span(j, n, img.shape[1])
    size = int(round(np.clip(height, 0.0, 1.0) * (bottom - top)))
    fill(img, bottom - size, bottom, left, right, color)


def columns(img: np.ndarray, top: int, bottom: int, heights: np.ndarray, colors: list) -> None:
    """One bar per value of `heights` (see `bar`), side by side across the frame's width."""
    for j in range(len(heights)):
        bar(img, top, bottom, j, len(heights), heights[j], colors[j])


def signed_columns(
    img: np.ndarray, top: int, bottom: int, values: np.ndarray, scale: float
) -> None:
    """One bar per value around the band's middle line: positive up in green, negative down in
    red, `scale` reaching the band's edge."""
    n = len(values)
    mid = (top + bottom) // 2
    fill(img, mid, mid + 1, 0, img.shape[1], DARK)
    if n == 0 or scale <= 0:
        return
    half = (bottom - top) // 2
    for j in range(n):
        left, right = _span(j, n, img.shape[1])
        size = int(round(min(abs(values[j]) / scale, 1.0) * half))
        if values[j] > 0:
            fill(img, mid - size, mid, left, right, GREEN)
        elif values[j] < 0:
            fill(img, mid + 1, mid + 1 + size, left, right, RED)


def line(img: np.ndarray, top: int, bottom: int, series: np.ndarray, color) -> None:
    """`series` as a line across the frame's width, scaled to the band [top, bottom): each
    column joins its point to the previous one with a vertical run, so steep moves stay
    connected. Empty or constant series draw a flat line."""
    w = img.shape[1]
    if len(series) == 0:
        return
    lo, hi = float(np.min(series)), float(np.max(series))
    span = hi - lo if hi > lo else 1.0
    x = np.linspace(0, len(series) - 1, w)
    y = np.interp(x, np.arange(len(series)), series)
    rows = (bottom - 1 - np.round((y - lo) / span * (bottom - 1 - top))).astype(int)
    prev = rows[0]
    for col in range(w):
        a, b = sorted((prev, rows[col]))
        fill(img, a, b + 1, col, col + 1, color)
        prev = rows[col]
