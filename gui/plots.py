"""Live training curves: loss, the task's metric and the learning rate against the step, drawn from growing
NumPy buffers by a ~30 Hz timer (one setData per changed curve per tick) with clip-to-view and peak downsampling,
so a million-step run pans as smoothly as a short one.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .theme import is_dark

FRAME_MS = 33  # ~30 Hz: fast enough to look live, slow enough that a 1M-point curve costs little
# While a run trains, drawing competes with it for the CPU (and Python's lock): the next frame waits until drawing
# has used at most this share of the time since the last one. A machine that draws a frame in 1 ms keeps 30 Hz;
# one that needs 10 ms (a 2-core laptop, software rendering) draws about 2 frames a second.
DRAW_BUDGET = 0.02
MAX_FRAME_MS = 1000
TRAIN_COLOR = "#3b7dd8"  # blue, the colour of the training figures everywhere
VAL_COLOR = "#e0702b"    # orange, validation
LR_COLOR = "#2e9e5b"     # green, the learning rate
OVERLAY_COLORS = ("#8a56c9", "#17a2a8", "#d0508a", "#d49a1f", "#7d8794", "#1f9ed1")
METRIC_NAMES = {"acc": "accuracy", "mae": "mean absolute error", "r2": "R²"}
METRIC_KEYS = ("acc", "mae", "r2")


# ---- data ---------------------------------------------------------------------------------------------------
class GrowingBuffer:
    """A 1-D NumPy array that is appended to in chunks and doubles its storage when full, so n appends cost
    O(n) copies in all; `view()` is the filled part, a slice of the storage (no copy)."""

    def __init__(self, capacity: int = 1024, dtype: Any = np.float64):
        self._data = np.empty(max(1, int(capacity)), dtype=dtype)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return len(self._data)

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def append(self, values: Any) -> None:
        """Add one value or a whole array of values at the end."""
        chunk = np.asarray(values, dtype=self._data.dtype).reshape(-1)
        end = self._size + len(chunk)
        if end > len(self._data):
            capacity = len(self._data)
            while capacity < end:
                capacity *= 2
            grown = np.empty(capacity, dtype=self._data.dtype)
            grown[:self._size] = self._data[:self._size]
            self._data = grown
        self._data[self._size:end] = chunk
        self._size = end

    def view(self) -> np.ndarray:
        return self._data[:self._size]

    def last(self, default: float | None = None) -> Any:
        return self._data[self._size - 1] if self._size else default

    def clear(self) -> None:
        """Forget the values but keep the storage (a new run usually grows as far as the last)."""
        self._size = 0


def ema(values: Any, alpha: float, initial: float | None = None) -> np.ndarray:
    """The exponential moving average y[t] = alpha·y[t−1] + (1−alpha)·x[t], starting from `initial` (the first
    value when None), vectorised: within a block y[t] = a^(t+1)·y0 + (1−a)·a^t·Σ x[k]·a^(−k), with blocks short
    enough that a^(−k) stays far from overflow. Non-finite values pass through unsmoothed and do not poison the
    average that follows them."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if alpha <= 0.0 or len(x) == 0:
        return x.copy()
    finite = np.isfinite(x)
    if not finite.all():
        out = x.copy()
        out[finite] = ema(x[finite], alpha, initial)
        return out
    alpha = min(float(alpha), 0.999999)
    out = np.empty_like(x)
    prev = float(x[0]) if initial is None or not math.isfinite(initial) else float(initial)
    block = max(1, int(300.0 / -math.log(alpha)))  # a^-block ≤ e^300: room for values up to ~1e170
    powers = alpha ** np.arange(min(block, len(x)), dtype=np.float64)
    for start in range(0, len(x), block):
        seg = x[start:start + block]
        p = powers[:len(seg)]
        acc = np.cumsum(seg / p)
        y = alpha * p * prev + (1.0 - alpha) * p * acc
        out[start:start + len(seg)] = y
        prev = y[-1]
    return out


class MinMaxPyramid:
    """Minima and maxima of y over aligned blocks of 2, 4, 8 … points, extended as y grows (each new chunk
    costs about twice its length in all levels). `envelope` then reduces any index range to a few points per
    pixel column from the level whose blocks are just small enough, in time proportional to the pixels, not
    to the points: panning over a million points costs what panning over a thousand does."""

    def __init__(self) -> None:
        self.levels: list[tuple[GrowingBuffer, GrowingBuffer]] = []

    def clear(self) -> None:
        self.levels = []

    def extend(self, y: np.ndarray) -> None:
        """Bring every level up to date with y (which only ever grows)."""
        lo_src = hi_src = y
        k = 0
        while len(lo_src) >= 2:
            if k == len(self.levels):
                self.levels.append((GrowingBuffer(max(16, len(lo_src) // 2)), GrowingBuffer(max(16, len(lo_src) // 2))))
            lo, hi = self.levels[k]
            done, total = len(lo), len(lo_src) // 2
            if total > done:
                pair_lo = lo_src[2 * done:2 * total].reshape(-1, 2)
                pair_hi = hi_src[2 * done:2 * total].reshape(-1, 2)
                lo.append(np.fmin(pair_lo[:, 0], pair_lo[:, 1]))  # fmin/fmax: a NaN does not hide its neighbour
                hi.append(np.fmax(pair_hi[:, 0], pair_hi[:, 1]))
            lo_src, hi_src = lo.view(), hi.view()
            k += 1

    def envelope(self, x: np.ndarray, y: np.ndarray, i0: int, i1: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of points i0..i1 reduced to 2–4 blocks per column, each block drawn as its maximum then its
        minimum at the block's first x (the same picture as peak downsampling); the raw points when few."""
        n = i1 - i0
        if n <= 4 * columns or not self.levels:
            return x[i0:i1], y[i0:i1]
        k = min(int(math.log2(n / (2 * columns))), len(self.levels))
        b = 1 << k
        lo, hi = self.levels[k - 1]
        j0, j1 = i0 // b, min(len(lo), -(-i1 // b))
        count = max(0, j1 - j0)
        tail = i1 > j1 * b  # points after the last complete block: one more (max, min) pair
        out_x = np.empty(2 * (count + tail))
        out_y = np.empty(2 * (count + tail))
        out_x[0:2 * count:2] = x[j0 * b:j1 * b:b]
        out_x[1:2 * count:2] = out_x[0:2 * count:2]
        out_y[0:2 * count:2] = hi.view()[j0:j1]
        out_y[1:2 * count:2] = lo.view()[j0:j1]
        if tail:
            t0 = max(j1 * b, i0)
            rest = y[t0:i1]
            out_x[-2:] = x[t0]
            out_y[-2] = np.fmax.reduce(rest)
            out_y[-1] = np.fmin.reduce(rest)
        return out_x, out_y


class _Series:
    """One growing (x, y) pair, with an EMA-smoothed copy of y brought up to date on demand (incrementally,
    so a new chunk costs its own length, not the run's)."""

    def __init__(self, capacity: int = 1024):
        self.x = GrowingBuffer(capacity)
        self.y = GrowingBuffer(capacity)
        self.version = 0
        self.finite = True    # no NaN or inf so far: the curve may skip its finite check
        self.positive = True  # all > 0 so far: safe on a log axis
        self.lo, self.hi = math.inf, -math.inf  # over the finite values, kept per chunk
        self._smooth = GrowingBuffer(capacity)
        self._smooth_alpha = -1.0
        self._smooth_last: float | None = None
        self._pyramids: dict[bool, MinMaxPyramid] = {}  # raw (False) and smoothed (True)

    def __len__(self) -> int:
        return len(self.y)

    def append(self, x: Any, y: Any) -> None:
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if not len(y):
            return
        self.x.append(x)
        self.y.append(y)
        if self.finite and not np.isfinite(y).all():
            self.finite = False
        if self.positive and not (y > 0).all():
            self.positive = False
        finite = y if self.finite else y[np.isfinite(y)]
        if len(finite):
            self.lo, self.hi = min(self.lo, float(finite.min())), max(self.hi, float(finite.max()))
        self.version += 1

    def clear(self) -> None:
        self.x.clear()
        self.y.clear()
        self._smooth.clear()
        self._smooth_last = None
        self._pyramids.clear()
        self.finite = self.positive = True
        self.lo, self.hi = math.inf, -math.inf
        self.version += 1

    def smoothed(self, alpha: float) -> np.ndarray:
        """y smoothed with `alpha` (y itself when alpha is 0)."""
        if alpha <= 0.0:
            return self.y.view()
        if alpha != self._smooth_alpha:
            self._smooth.clear()
            self._smooth_alpha, self._smooth_last = alpha, None
            self._pyramids.pop(True, None)
        done, total = len(self._smooth), len(self.y)
        if done < total:
            tail = ema(self.y.view()[done:], alpha, self._smooth_last)
            self._smooth.append(tail)
            finite = tail[np.isfinite(tail)]
            if len(finite):
                self._smooth_last = float(finite[-1])
        return self._smooth.view()

    def pyramid(self, alpha: float) -> MinMaxPyramid:
        """The min/max pyramid of y as shown with `alpha`, brought up to date."""
        y = self.smoothed(alpha)
        pyramid = self._pyramids.setdefault(alpha > 0.0, MinMaxPyramid())
        pyramid.extend(y)
        return pyramid


class _Curve:
    """A plot item bound to a series (and a smoothing): `flush` draws it once when the series or the way it is
    shown changed; `fit_view` redraws a long curve only when the view has left the stretch, or the detail,
    that its reduced points were made for."""

    def __init__(self, item: pg.PlotDataItem, log_axis: bool = False, many: bool = False):
        self.item = item
        self.log_axis = log_axis
        self.many = many
        self.series: _Series | None = None
        self.alpha = 0.0
        self.shown: tuple = ()
        self.fast: bool | None = None
        self.cover: tuple[float, float, int] | None = None  # x range and pyramid level of the points drawn
        self.plot: pg.PlotItem | None = None  # set for overlay curves, which come and go

    def bind(self, series: _Series | None, alpha: float = 0.0) -> None:
        self.series, self.alpha = series, alpha

    def flush(self, log: bool) -> bool:
        """setData once if anything changed; True when it drew."""
        s = self.series
        key = (id(s), s.version if s is not None else -1, self.alpha, log and self.log_axis)
        if key == self.shown:
            return False
        self.shown = key
        if s is None or not len(s):
            self.cover = None
            self.item.setData([], [])
            return True
        self._draw(s, log)
        return True

    def fit_view(self, log: bool) -> bool:
        """After a pan or zoom: redraw from the pyramid if the points drawn no longer cover the view at the
        right detail; True when it drew."""
        s = self.series
        if not self.many or s is None or not len(s) or self.cover is None:
            return False
        i0, i1, level, _lo, _hi = self._wanted(s)
        lo, hi, drawn_level = self.cover
        x = s.x.view()
        v0, v1 = x[i0], x[i1 - 1]
        if lo <= v0 and v1 <= hi and level == drawn_level:
            return False
        self._draw(s, log)
        return True

    def _wanted(self, s: _Series) -> tuple[int, int, int, int, int]:
        """The view's index range, the pyramid level for it, and the range to reduce (the view and half a view
        either side, so that a pan of a few pixels needs nothing new)."""
        x = s.x.view()
        n = len(x)
        box = self.item.getViewBox()
        if box is None or box.autoRangeEnabled()[0]:
            return 0, n, self._level(n, box), 0, n
        x0, x1 = box.viewRange()[0]
        i0 = max(0, min(n - 1, int(np.searchsorted(x, x0)) - 1))
        i1 = max(i0 + 1, min(n, int(np.searchsorted(x, x1, side="right")) + 1))
        half = (i1 - i0) // 2
        return i0, i1, self._level(i1 - i0, box), max(0, i0 - half), min(n, i1 + half)

    @staticmethod
    def _level(points: int, box: Any) -> int:
        columns = max(200, int(box.width())) if box is not None else 1000
        return 0 if points <= 4 * columns else int(math.log2(points / (2 * columns)))

    def _draw(self, s: _Series, log: bool) -> None:
        y_all = s.smoothed(self.alpha)
        x_all = s.x.view()
        if self.many:
            i0, i1, level, lo, hi = self._wanted(s)
            box = self.item.getViewBox()
            columns = max(200, int(box.width())) if box is not None else 1000
            # the level is chosen for the view; the reduced stretch is wider but drawn at the same detail
            x, y = s.pyramid(self.alpha).envelope(x_all, y_all, lo, hi, max(columns, columns * (hi - lo) //
                                                                            max(1, i1 - i0)))
            self.cover = (float(x_all[lo]), float(x_all[hi - 1]), level)
        else:
            x, y = x_all, y_all
        fast = s.finite and (s.positive or not (log and self.log_axis))
        if fast != self.fast:
            # 'all' + skipFiniteCheck saves a pass over the data; a NaN (or log of ≤ 0) needs the careful path
            self.fast = fast
            self.item.setData(x, y, connect="all" if fast else "finite", skipFiniteCheck=fast)
        else:
            self.item.setData(x, y)


class GridAxis(pg.AxisItem):
    """An axis whose grid lines are opaque colours mixed with the plot's background, drawn beneath the data.

    Qt's raster engine draws translucent cosmetic lines on a slow path (about 20× an opaque one): pyqtgraph's
    alpha grid alone cost ~20 ms a frame at 1000×650, more than a million-point curve reduced to the view."""

    def __init__(self, orientation: str, **kwargs: Any):
        super().__init__(orientation, **kwargs)
        self.background = QColor("white")
        self._pens: dict[int, Any] = {}
        self.setStyle(maxTickLevel=1)  # major and minor lines; the third level tripled the lines for little

    def set_background(self, color: QColor) -> None:
        self.background = QColor(color)
        self._pens.clear()
        self.picture = None
        self.update()

    def generateDrawSpecs(self, p):  # noqa: N802 - pyqtgraph's name
        specs = super().generateDrawSpecs(p)
        if specs is None:
            return None
        axis, ticks, texts = specs
        return axis, [(self._opaque(pen), p1, p2) for pen, p1, p2 in ticks], texts

    def _opaque(self, pen: Any) -> Any:
        color = pen.color()
        if color.alpha() == 255:
            return pen
        key = color.rgba()
        solid = self._pens.get(key)
        if solid is None:
            a, bg = color.alphaF(), self.background
            solid = pg.mkPen(QColor.fromRgbF(a * color.redF() + (1 - a) * bg.redF(),
                                             a * color.greenF() + (1 - a) * bg.greenF(),
                                             a * color.blueF() + (1 - a) * bg.blueF()))
            self._pens[key] = solid
        return solid


class CompactAxis(GridAxis):
    """Tick labels with three significant digits and a short exponent (6.5e-4), for figures like learning
    rates whose plain decimals would not fit beside the plot."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [compact_number(v * scale) for v in values]


def steady_range(lo: float, hi: float, current: tuple[float, float] | None = None) -> tuple[float, float]:
    """A plot range for data between `lo` and `hi`: `current` while it holds them and is at most three times as
    wide as they need; otherwise bounds on a 1-2-5 grid of about a quarter of the data's span, from zero when the
    data are closer to zero than they are wide. A falling loss then keeps its axis for most of a run instead of
    rescaling at every frame."""
    if current is not None:
        c0, c1 = current
        need = hi - lo if hi > lo else max(abs(hi), 1e-12)
        if c0 <= lo and hi <= c1 and c1 - c0 <= 3 * need:
            return current
    span = hi - lo
    if not span > 0:  # one value (a constant learning rate): from zero to half again above it
        if hi > 0:
            return 0.0, 1.5 * hi
        if hi < 0:
            return 1.5 * hi, 0.0
        return -1.0, 1.0
    if 0 <= lo <= span:  # a loss or an accuracy: from zero, with room for the fall ahead
        lo = 0.0
    elif hi <= 0 and -hi <= span:
        hi = 0.0
    span = hi - lo
    raw = span / 4
    unit = 10.0 ** math.floor(math.log10(raw))
    step = next(m * unit for m in (1, 2, 5, 10) if raw <= m * unit * (1 + 1e-9))
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def compact_number(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    if 1e-2 <= abs(v) < 1e4:
        return f"{v:.3g}"
    mantissa, exponent = f"{v:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def grid_axes(left: type[GridAxis] = GridAxis) -> dict[str, GridAxis]:
    """Left and bottom axes for a new PlotItem (addPlot(axisItems=grid_axes()))."""
    return {"left": left("left"), "bottom": GridAxis("bottom")}


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t), round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def _alpha(color: str, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def set_title(plot: pg.PlotItem, text: str, **style: Any) -> None:
    """plot.setTitle, skipped when the title would not change: pyqtgraph lays the plot out again for every
    title it is given (about 0.5 ms), and live views retitle at every snapshot."""
    key = (text, tuple(sorted(style.items())))
    if getattr(plot, "_layerloom_title", None) != key:
        plot._layerloom_title = key
        plot.setTitle(text, **style)


def style_plot(plot: pg.PlotItem, palette: QPalette, title: str | None = None) -> None:
    """Axes, grid, title and legend of a plot in the palette's colours (shared with the other live views)."""
    text = palette.color(QPalette.ColorRole.Text)
    muted = _mix(text, palette.color(QPalette.ColorRole.Base), 0.35)
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(muted))
        axis.setTextPen(pg.mkPen(muted))
        if isinstance(axis, GridAxis):
            axis.set_background(plot_background(palette))
            # under the ViewBox (-100), so the opaque lines never cover data (PlotItem puts axes at 0.5)
            axis.setZValue(-200)
    if title is not None:
        set_title(plot, title, color=text.name(), size="10pt")
    legend = plot.legend
    if legend is not None:
        base = QColor(palette.color(QPalette.ColorRole.Base))
        base.setAlpha(200)
        legend.setBrush(pg.mkBrush(base))
        legend.setPen(pg.mkPen(_mix(text, palette.color(QPalette.ColorRole.Base), 0.8)))
        legend.setLabelTextColor(text)
        for _sample, label in legend.items:
            label.setText(label.text, color=text)


def plot_background(palette: QPalette) -> QColor:
    return palette.color(QPalette.ColorRole.Base)


# ---- the widget ---------------------------------------------------------------------------------------------
class _TimedGraphics(pg.GraphicsLayoutWidget):
    """The plots' canvas, adding up how long its paints took since the last frame (the frame budget reads it:
    one frame can take more than one paint)."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.paint_seconds = 0.0

    def paintEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        t = time.perf_counter()
        super().paintEvent(event)
        self.paint_seconds += time.perf_counter() - t


class TrainingPlots(QWidget):
    """Loss (per step, per epoch, validation), the metric (accuracy, MAE or R²) and the learning rate beneath,
    all against the step. Data arrive as plain dicts of NumPy arrays (`add_steps`) and floats (`add_epoch`);
    drawing happens on a timer, never per call. Past runs can be overlaid (dashed) for comparison."""

    smoothing_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._info: dict[str, Any] = {}
        self._alpha = 0.0
        self._log = False
        self._metric = "acc"
        self._last_step: float | None = None
        self._epoch_logs: list[dict[str, float]] = []
        self._steps: dict[str, _Series] = {k: _Series(4096) for k in ("loss", "lr", *METRIC_KEYS)}
        self._epochs: dict[str, _Series] = {}
        self._overlays: list[dict[str, Any]] = []
        self._flush_seconds = 0.0
        self._paint_cost = 0.0  # what drawing the last frame cost the window's thread, paints included
        # Steady axes: while the user has not panned or zoomed, the plots show the whole run on ranges that change
        # only when the data outgrow them (_follow_ranges), so a frame redraws the curves, not the axes.
        self._follow_x = True
        self._follow_y: dict[int, bool] = {}
        self._ranges: dict[int, tuple] = {}
        self._setting_range = False
        self.updates = 0       # timer ticks that drew something (tests and the bench read it)
        self.set_data_calls = 0

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._on_frame)

        self._build_controls()
        self._build_plots()
        self._apply_palette()
        self.start_run({})

    # ---- construction ----------------------------------------------------------------------------------------
    def _build_controls(self) -> None:
        bar = QHBoxLayout()
        bar.setContentsMargins(8, 4, 8, 0)
        bar.setSpacing(8)
        smoothing = QLabel("Smoothing")
        smoothing.setToolTip("exponential moving average of the per-step curves (display only; 0 = raw)")
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0, 99)
        self.smoothing_slider.setFixedWidth(120)
        self.smoothing_slider.setToolTip(smoothing.toolTip())
        self.smoothing_spin = QDoubleSpinBox()
        self.smoothing_spin.setRange(0.0, 0.99)
        self.smoothing_spin.setSingleStep(0.05)
        self.smoothing_spin.setDecimals(2)
        self.smoothing_spin.setToolTip(smoothing.toolTip())
        self.smoothing_slider.valueChanged.connect(self._on_slider_moved)
        self.smoothing_spin.valueChanged.connect(self.set_smoothing)
        self.log_check = QCheckBox("Log loss")
        self.log_check.setToolTip("logarithmic loss axis: late, small improvements stay visible")
        self.log_check.toggled.connect(self.set_log_scale)
        self.metric_combo = QComboBox()
        self.metric_combo.setToolTip("the figure shown in the right-hand plot")
        self.metric_combo.currentIndexChanged.connect(self._on_metric_chosen)
        self.status_label = QLabel("")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # past runs of the project, offered for overlay; the window sets the provider (plain RunInfo records)
        self.runs_provider: Callable[[], list[Any]] | None = None
        self.compare_button = QToolButton()
        self.compare_button.setText("Compare runs")
        self.compare_button.setToolTip("overlay the epoch curves of this project's past runs (dashed: training, "
                                       "dotted: validation)")
        self.compare_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.compare_menu = QMenu(self.compare_button)
        self.compare_menu.aboutToShow.connect(self.fill_compare_menu)
        self.compare_button.setMenu(self.compare_menu)
        for w in (smoothing, self.smoothing_slider, self.smoothing_spin, self.log_check, self.metric_combo,
                  self.compare_button):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.status_label)
        self._bar = bar

    def _new_curve(self, plot: pg.PlotItem, name: str | None, pen: Any, log_axis: bool = False,
                   symbol: bool = False, many: bool = False) -> _Curve:
        kwargs: dict[str, Any] = {"pen": pen, "name": name}
        if symbol:
            kwargs.update(symbol="o", symbolSize=6, symbolBrush=pen.color(), antialias=True)
        item = pg.PlotDataItem(**kwargs)
        plot.addItem(item)
        if many:  # per-step curves: millions of points, drawn thin and reduced to the pixels in view
            # (after addItem, which hands every item the plot's own clip and downsampling settings)
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
            item.setSkipFiniteCheck(True)
            # one min/max pair per pixel column draws the same envelope as pyqtgraph's default of five, for a
            # fifth of the path
            item.opts["autoDownsampleFactor"] = 1.0
        return _Curve(item, log_axis, many)

    def _build_plots(self) -> None:
        self.graphics = _TimedGraphics()
        self.graphics.ci.setContentsMargins(4, 4, 8, 4)
        self.graphics.ci.setSpacing(6)
        self.loss_plot = self.graphics.addPlot(row=0, col=0, axisItems=grid_axes())
        self.metric_plot = self.graphics.addPlot(row=0, col=1, rowspan=2, axisItems=grid_axes())
        self.lr_plot = self.graphics.addPlot(row=1, col=0, axisItems=grid_axes(CompactAxis))
        self.lr_plot.setMaximumHeight(110)
        self.lr_plot.setMinimumHeight(48)  # a short dock keeps its room for the loss
        self.graphics.ci.layout.setRowStretchFactor(0, 4)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):
            plot.showGrid(x=True, y=True, alpha=0.18)
            plot.getAxis("left").setWidth(70)
            plot.setMenuEnabled(False)
            plot.getViewBox().setAutoVisible(y=True)
        self.metric_plot.setXLink(self.loss_plot)
        self.lr_plot.setXLink(self.loss_plot)
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):
            box = plot.getViewBox()
            box.sigXRangeChanged.connect(self._on_x_range_changed)
            box.sigRangeChangedManually.connect(lambda _mask, plot=plot: self._on_manual_range(plot))
            plot.autoBtn.clicked.connect(lambda *_a, plot=plot: self._on_auto_clicked(plot))
        self.lr_plot.setLabel("bottom", "step")
        self.metric_plot.setLabel("bottom", "step")
        self.lr_plot.setLabel("left", "lr")  # short: the tick labels need the room
        self.lr_plot.getAxis("left").enableAutoSIPrefix(False)
        # one legend: the colours mean the same in both plots, and a rising accuracy would run under a second
        self.loss_plot.addLegend(offset=(-8, 8), labelTextSize="8pt", verSpacing=-6)

        step_pen = pg.mkPen(_alpha(TRAIN_COLOR, 120), width=1)
        shadow_pen = pg.mkPen(_alpha(TRAIN_COLOR, 45), width=1)
        train_pen = pg.mkPen(TRAIN_COLOR, width=2)
        val_pen = pg.mkPen(VAL_COLOR, width=2)
        self._loss_shadow = self._new_curve(self.loss_plot, None, shadow_pen, log_axis=True, many=True)
        self._loss_step = self._new_curve(self.loss_plot, "train (per step)", step_pen, log_axis=True, many=True)
        self._loss_train = self._new_curve(self.loss_plot, "train", train_pen, log_axis=True, symbol=True)
        self._loss_val = self._new_curve(self.loss_plot, "validation", val_pen, log_axis=True, symbol=True)
        self._metric_shadow = self._new_curve(self.metric_plot, None, shadow_pen, many=True)
        self._metric_step = self._new_curve(self.metric_plot, None, step_pen, many=True)
        self._metric_train = self._new_curve(self.metric_plot, None, train_pen, symbol=True)
        self._metric_val = self._new_curve(self.metric_plot, None, val_pen, symbol=True)
        self._lr = self._new_curve(self.lr_plot, None, pg.mkPen(LR_COLOR, width=1.5), many=True)
        self._curves = [self._loss_shadow, self._loss_step, self._loss_train, self._loss_val, self._metric_shadow,
                        self._metric_step, self._metric_train, self._metric_val, self._lr]
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):  # empty: whole steps and 0-1, not
            plot.getViewBox().setRange(xRange=(0, 100), yRange=(0, 1), padding=0)  # "step (x0.001)"

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self._bar)
        layout.addWidget(self.graphics, 1)

    # ---- public API -----------------------------------------------------------------------------------------
    def start_run(self, info: dict[str, Any]) -> None:
        """Forget the last run's curves (overlays stay). `info`: "metric" ("acc"/"accuracy"/"binary_*" or
        "mae"/"regression"), "total_steps", "steps_per_epoch"."""
        self._info = dict(info)
        metric = str(info.get("metric", "acc"))
        self._metric = {"regression": "mae", "mae": "mae", "r2": "r2"}.get(metric, "acc")
        self._last_step = None
        self._epoch_logs = []
        for s in self._steps.values():
            s.clear()
        self._epochs = {}
        self._refresh_metric_combo()
        self._rebind()
        self._rebuild_overlays()
        self._update_status()
        self._follow_x = True
        self._follow_y.clear()
        self._ranges.clear()
        self.flush()

    def add_steps(self, steps: dict[str, Any]) -> None:
        """Append a chunk of per-step figures: columnar arrays under "step", "loss", "acc" or "mae", "lr"."""
        x = np.asarray(steps.get("step", ()), dtype=np.float64).reshape(-1)
        if not len(x):
            return
        for key, series in self._steps.items():
            values = steps.get(key)
            if values is not None:
                y = np.asarray(values, dtype=np.float64).reshape(-1)
                if len(y) == len(x):
                    series.append(x, y)
        self._last_step = float(x[-1])
        if any(len(self._steps[k]) and not self._known_metric(k) for k in METRIC_KEYS):
            self._refresh_metric_combo()
        self._schedule()

    def add_epoch(self, logs: dict[str, Any]) -> None:
        """Append one epoch's figures (loss, acc/mae/r2, their val_ versions, lr, time), drawn at the epoch's last
        step ("step" in the dict, else the last step seen, else epoch × steps per epoch)."""
        logs = {k: v for k, v in logs.items() if isinstance(v, (int, float, np.number))}
        self._epoch_logs.append(logs)
        x = self._epoch_x(logs, self._last_step, self._info.get("steps_per_epoch"))
        new_key = False
        for key, value in logs.items():
            if key in ("epoch", "step", "time"):
                continue
            series = self._epochs.get(key)
            if series is None:
                series = self._epochs[key] = _Series(64)
                new_key = True
            series.append([x], [float(value)])
        if new_key:
            self._rebind()
        self._refresh_metric_combo()
        self._update_status()
        self._schedule()

    def add_overlay(self, name: str, history: dict[str, Any]) -> None:
        """Draw a past run's epoch curves (history = {"epochs": [epoch dicts]}) dashed in a colour of its own."""
        color = OVERLAY_COLORS[len(self._overlays) % len(OVERLAY_COLORS)]
        overlay = {"name": name, "epochs": [dict(e) for e in history.get("epochs", [])], "color": color,
                   "steps_per_epoch": history.get("steps_per_epoch"), "items": []}
        self._overlays.append(overlay)
        self._draw_overlay(overlay)
        self._schedule()

    def clear_overlays(self) -> None:
        for overlay in self._overlays:
            self._remove_overlay_items(overlay)
        self._overlays = []

    def overlay_names(self) -> list[str]:
        return [o["name"] for o in self._overlays]

    def remove_overlay(self, name: str) -> None:
        for overlay in [o for o in self._overlays if o["name"] == name]:
            self._remove_overlay_items(overlay)
            self._overlays.remove(overlay)
        self._schedule()

    def fill_compare_menu(self) -> None:
        """List the project's past runs (newest first) as check boxes; a checked run is overlaid."""
        menu = self.compare_menu
        menu.clear()
        try:
            runs = list(self.runs_provider()) if self.runs_provider else []
        except OSError as e:  # a runs folder that cannot be read: say so in the menu
            menu.addAction(f"The runs folder cannot be read: {e.strerror or e}").setEnabled(False)
            return
        if not runs:
            menu.addAction("No past runs yet: a saved project keeps each run in its runs folder").setEnabled(False)
            return
        shown = set(self.overlay_names())
        for run in runs[:30]:
            action = menu.addAction(_run_label(run))
            action.setCheckable(True)
            action.setChecked(run.name in shown)
            action.setToolTip(str(run.folder))
            action.toggled.connect(lambda on, r=run: self.compare_run(r, on))
        if len(runs) > 30:
            menu.addAction(f"… {len(runs) - 30} older runs").setEnabled(False)
        menu.addSeparator()
        clear = menu.addAction("Clear comparison")
        clear.setEnabled(bool(shown))
        clear.triggered.connect(self.clear_overlays)

    def compare_run(self, run: Any, on: bool = True) -> bool:
        """Overlay (or remove) one past run, read from its folder; False with the reason in the status line
        when its history cannot be read."""
        if not on:
            self.remove_overlay(run.name)
            return True
        if run.name in self.overlay_names():
            return True
        from engine.errors import ProjectError
        from engine.runs import load_history
        try:
            history = load_history(run.folder)
        except (ProjectError, OSError) as e:
            self.status_label.setText(f"{run.name}: its curves cannot be read ({e})")
            return False
        if not history.get("epochs"):
            self.status_label.setText(f"{run.name} finished no epoch: nothing to compare")
            return False
        self.add_overlay(run.name, history)
        return True

    def set_smoothing(self, alpha: float) -> None:
        """EMA weight of the per-step curves on screen, 0 (raw) to 0.99; the stored values never change."""
        alpha = min(0.99, max(0.0, round(float(alpha), 4)))
        if alpha == self._alpha:
            return
        self._alpha = alpha
        for w, v in ((self.smoothing_spin, alpha), (self.smoothing_slider, round(alpha * 100))):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)
        self._rebind()
        self._style_step_curves()
        self.smoothing_changed.emit(alpha)
        self._schedule()

    def smoothing(self) -> float:
        return self._alpha

    def set_log_scale(self, on: bool) -> None:
        """Logarithmic loss axis."""
        on = bool(on)
        if on == self._log:
            return
        self._log = on
        self.log_check.blockSignals(True)
        self.log_check.setChecked(on)
        self.log_check.blockSignals(False)
        self.loss_plot.setLogMode(False, on)
        self._schedule()

    def log_scale(self) -> bool:
        return self._log

    def set_metric(self, key: str) -> None:
        """Show "acc", "mae" or "r2" in the metric plot."""
        index = self.metric_combo.findData(key)
        if index >= 0:
            self.metric_combo.setCurrentIndex(index)
        else:
            self._metric = key
            self._rebind()
            self._schedule()

    def current_metric(self) -> str:
        return self._metric

    def raw_steps(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """The stored per-step (x, y) of "loss", "acc", "mae" or "lr" (views, not copies)."""
        s = self._steps[key]
        return s.x.view(), s.y.view()

    def epoch_series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        s = self._epochs.get(key)
        return (s.x.view(), s.y.view()) if s is not None else (np.empty(0), np.empty(0))

    def curves(self) -> dict[str, pg.PlotDataItem]:
        """The plot items by role (tests and the bench look at them)."""
        names = ("loss_shadow", "loss_step", "loss_train", "loss_val", "metric_shadow", "metric_step",
                 "metric_train", "metric_val", "lr")
        return dict(zip(names, (c.item for c in self._curves)))

    def flush(self) -> int:
        """Draw every curve whose data changed, at once (the timer does this ~30 times a second); returns how
        many setData calls it made."""
        self._timer.stop()
        self.graphics.paint_seconds = 0.0  # from here on, the paints this frame causes
        self._follow_ranges()
        drawn = sum(curve.flush(self._log) for curve in self._curves)
        for overlay in self._overlays:
            drawn += sum(curve.flush(self._log) for curve in overlay["items"])
        if drawn:
            self.updates += 1
            self.set_data_calls += drawn
        return drawn

    # ---- internals ------------------------------------------------------------------------------------------
    def _plot_bounds(self, plot: pg.PlotItem) -> tuple[float, float, float, float] | None:
        """(x min, x max, y min, y max) over the finite data of the curves drawn in `plot` (overlays included),
        in the plot's own coordinates (log10 of y on a log axis); None when it shows nothing."""
        box = plot.getViewBox()
        curves = [c for c in self._curves if c.item.getViewBox() is box]
        for overlay in self._overlays:
            curves += [c for c in overlay["items"] if c.plot is plot]
        log = plot is self.loss_plot and self._log
        x0 = x1 = y0 = y1 = None
        for c in curves:
            s = c.series
            if s is None or not len(s) or s.hi < s.lo:
                continue
            if log and s.lo <= 0:  # values a log axis cannot place: leave that plot's y to pyqtgraph
                return None
            lo, hi = (math.log10(s.lo), math.log10(s.hi)) if log else (s.lo, s.hi)
            x = s.x.view()
            x0 = x[0] if x0 is None else min(x0, x[0])
            x1 = x[-1] if x1 is None else max(x1, x[-1])
            y0 = lo if y0 is None else min(y0, lo)
            y1 = hi if y1 is None else max(y1, hi)
        return None if x0 is None else (float(x0), float(x1), y0, y1)

    def _follow_ranges(self) -> None:
        """Set each plot's range from its data unless the user has panned or zoomed it: x from 0 to the run's
        last step (known from the start), y on a 1-2-5 grid kept while it holds the data (steady_range). The
        axes then stay as they are for most frames, and pyqtgraph redraws only the curves."""
        bounds = {id(p): self._plot_bounds(p) for p in (self.loss_plot, self.metric_plot, self.lr_plot)}
        if self._follow_x:
            ends = [b[1] for b in bounds.values() if b is not None]
            total = float(self._info.get("total_steps") or 0)
            if ends or total:
                end = max([total, *ends])
                current = self._ranges.get(0)
                if total >= end:
                    target = (0.0, end)
                elif current is not None and current[1] >= end:
                    target = current  # no total known: grow by half again, not at every step
                else:
                    target = (0.0, end * 1.5 if end > 0 else 1.0)
                if target != current:
                    self._ranges[0] = target
                    self._apply_range(self.loss_plot, x=target)  # the other plots follow its x
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):
            key = id(plot)
            if not self._follow_y.get(key, True):
                continue
            b = bounds[key]
            box = plot.getViewBox()
            if b is None:
                if not box.autoRangeEnabled()[1]:
                    box.enableAutoRange(y=True)  # nothing to frame, or a log axis with values ≤ 0
                self._ranges.pop(key, None)
                continue
            mode = (plot is self.loss_plot and self._log, self._metric if plot is self.metric_plot else "")
            current = self._ranges.get(key)
            target = steady_range(b[2], b[3], current[1] if current and current[0] == mode else None)
            if box.autoRangeEnabled()[1] or current != (mode, target):
                self._ranges[key] = (mode, target)
                self._apply_range(plot, y=target)

    def _apply_range(self, plot: pg.PlotItem, x: tuple[float, float] | None = None,
                     y: tuple[float, float] | None = None) -> None:
        box = plot.getViewBox()
        self._setting_range = True
        try:
            if x is not None:
                box.enableAutoRange(x=False)
                box.setXRange(*x, padding=0.01)
            if y is not None:
                box.enableAutoRange(y=False)
                box.setYRange(*y, padding=0.03)
        finally:
            self._setting_range = False

    def _on_manual_range(self, plot: pg.PlotItem) -> None:
        """A pan or zoom with the mouse: that plot (and the shared x) stays where the user put it."""
        self._follow_x = False
        self._follow_y[id(plot)] = False

    def _on_auto_clicked(self, plot: pg.PlotItem) -> None:
        """pyqtgraph's "A" button: back to following the run."""
        self._follow_x = True
        self._follow_y[id(plot)] = True
        self._ranges.clear()
        self.flush()

    def following(self) -> tuple[bool, bool, bool, bool]:
        """(x, loss y, metric y, lr y): which ranges follow the data (tests read it)."""
        return (self._follow_x, *(self._follow_y.get(id(p), True)
                                  for p in (self.loss_plot, self.metric_plot, self.lr_plot)))

    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start(self.frame_interval())

    def frame_interval(self) -> int:
        """Milliseconds until the next frame: ~30 Hz, slower when drawing costs more than DRAW_BUDGET."""
        cost = self._flush_seconds + self.graphics.paint_seconds  # the last frame's paints, all of them
        return int(min(MAX_FRAME_MS, max(FRAME_MS, 1000 * cost / DRAW_BUDGET)))

    def _on_frame(self) -> None:
        t = time.perf_counter()
        self.flush()
        self._flush_seconds = time.perf_counter() - t

    def _on_x_range_changed(self, box: Any, _range: Any) -> None:
        """A pan or zoom: long curves in that plot redraw from their pyramids when their points fall short. A
        range set by anyone but _follow_ranges (a script, a test) also stops x following the run."""
        if not self._setting_range:
            self._follow_x = False
        for curve in self._curves:
            if curve.many and curve.item.getViewBox() is box:
                curve.fit_view(self._log)

    def _on_slider_moved(self, value: int) -> None:
        self.set_smoothing(value / 100.0)

    def _on_metric_chosen(self, index: int) -> None:
        key = self.metric_combo.itemData(index)
        if key and key != self._metric:
            self._metric = key
            self._rebind()
            self._rebuild_overlays()
            self._update_status()
            self._schedule()

    def _known_metric(self, key: str) -> bool:
        return self.metric_combo.findData(key) >= 0

    def _refresh_metric_combo(self) -> None:
        keys = [k for k in METRIC_KEYS if len(self._steps[k]) or k in self._epochs]
        if not keys:
            keys = [self._metric]
        if self._metric not in keys:
            self._metric = keys[0]
        current = [self.metric_combo.itemData(i) for i in range(self.metric_combo.count())]
        if current != keys:
            self.metric_combo.blockSignals(True)
            self.metric_combo.clear()
            for k in keys:
                self.metric_combo.addItem(METRIC_NAMES[k], k)
            self.metric_combo.blockSignals(False)
            self._rebind()
        self.metric_combo.setCurrentIndex(keys.index(self._metric))
        self.metric_combo.setVisible(len(keys) > 1)

    def _rebind(self) -> None:
        """Point each curve at the series it shows now (after a new run, metric or smoothing)."""
        a, m = self._alpha, self._metric
        raw_shadow = a > 0
        self._loss_shadow.bind(self._steps["loss"] if raw_shadow else None)
        self._loss_step.bind(self._steps["loss"], a)
        self._loss_train.bind(self._epochs.get("loss"))
        self._loss_val.bind(self._epochs.get("val_loss"))
        step_metric = self._steps.get(m)
        self._metric_shadow.bind(step_metric if raw_shadow else None)
        self._metric_step.bind(step_metric, a)
        self._metric_train.bind(self._epochs.get(m))
        self._metric_val.bind(self._epochs.get(f"val_{m}"))
        self._lr.bind(self._steps["lr"] if len(self._steps["lr"]) or "lr" not in self._epochs
                      else self._epochs["lr"])
        set_title(self.metric_plot, METRIC_NAMES.get(m, m), color=self.palette().color(QPalette.ColorRole.Text).name(),
                  size="10pt")

    @staticmethod
    def _epoch_x(logs: dict[str, float], last_step: float | None, steps_per_epoch: Any) -> float:
        if "step" in logs:
            return float(logs["step"])
        if last_step is not None:
            return last_step
        return float(logs.get("epoch", 0)) * float(steps_per_epoch or 1)

    def _draw_overlay(self, overlay: dict[str, Any]) -> None:
        spe = overlay["steps_per_epoch"] or self._info.get("steps_per_epoch")
        color, name, m = overlay["color"], overlay["name"], self._metric
        items = []
        for plot, key, log_axis in ((self.loss_plot, "loss", True), (self.metric_plot, m, False)):
            for prefix, style, label in (("", Qt.PenStyle.DashLine, "train"), ("val_", Qt.PenStyle.DotLine, "val")):
                rows = [e for e in overlay["epochs"] if isinstance(e.get(prefix + key), (int, float))]
                if not rows:
                    continue
                series = _Series(max(1, len(rows)))
                series.append([self._epoch_x(e, None, spe) for e in rows], [e[prefix + key] for e in rows])
                pen = pg.mkPen(color, width=1.6, style=style)
                legend = f"{name} · {label}" if plot is self.loss_plot else None
                curve = self._new_curve(plot, legend, pen, log_axis=log_axis)
                curve.bind(series)
                curve.plot = plot
                items.append(curve)
        overlay["items"] = items

    def _remove_overlay_items(self, overlay: dict[str, Any]) -> None:
        for curve in overlay["items"]:
            curve.plot.removeItem(curve.item)
        overlay["items"] = []

    def _rebuild_overlays(self) -> None:
        for overlay in self._overlays:
            self._remove_overlay_items(overlay)
            self._draw_overlay(overlay)

    def _update_status(self) -> None:
        parts = []
        total_epochs = self._info.get("epochs")
        if not total_epochs and self._info.get("total_steps") and self._info.get("steps_per_epoch"):
            total_epochs = round(self._info["total_steps"] / self._info["steps_per_epoch"])
        if self._epoch_logs:
            last = self._epoch_logs[-1]
            epoch = int(last.get("epoch", len(self._epoch_logs)))
            parts.append(f"epoch {epoch}" + (f" / {int(total_epochs)}" if total_epochs else ""))
            for key in ("loss", "val_loss"):
                if key in last:
                    parts.append(f"{key.replace('_', ' ')} {last[key]:.4g}")
            m = self._metric
            best_key = f"val_{m}" if any(f"val_{m}" in e for e in self._epoch_logs) else m
            values = [(e[best_key], int(e.get("epoch", i + 1))) for i, e in enumerate(self._epoch_logs)
                      if best_key in e and math.isfinite(e[best_key])]
            if values:
                best = (min if m == "mae" else max)(values)
                label = best_key.replace("_", " ")
                parts.append(f"best {label} {_fmt_metric(m, best[0])} (epoch {best[1]})")
        self.status_label.setText("  ·  ".join(parts))

    def _apply_palette(self) -> None:
        palette = self.palette()
        self.graphics.setBackground(plot_background(palette))
        for plot in (self.loss_plot, self.metric_plot, self.lr_plot):
            style_plot(plot, palette)
        text = palette.color(QPalette.ColorRole.Text).name()
        set_title(self.loss_plot, "loss", color=text, size="10pt")
        set_title(self.metric_plot, METRIC_NAMES.get(self._metric, self._metric), color=text, size="10pt")
        # epoch markers get a ring of the background so that they stand out on the per-step cloud
        ring = pg.mkPen(plot_background(palette), width=1.2)
        for curve in (self._loss_train, self._loss_val, self._metric_train, self._metric_val):
            curve.item.setSymbolPen(ring)
        self._style_step_curves()
        muted = _mix(palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window), 0.38)
        self.status_label.setStyleSheet(f"color: {muted.name()}")

    def _style_step_curves(self) -> None:
        """Raw per-step curves are thin and light; once smoothed, the average is drawn firmer over a faint
        shadow of the raw values."""
        # opaque colours mixed with the background: a translucent pen darkens every joint of a dense curve
        palette = self.palette()
        bg, train = plot_background(palette), QColor(TRAIN_COLOR)
        dark = is_dark(palette)
        if self._alpha > 0:
            pen = pg.mkPen(_mix(train, bg, 0.2 if dark else 0.25), width=1.2)
        else:
            pen = pg.mkPen(_mix(train, bg, 0.4 if dark else 0.5), width=1)
        shadow = pg.mkPen(_mix(train, bg, 0.75 if dark else 0.8), width=1)
        for curve in (self._loss_step, self._metric_step):
            curve.item.setPen(pen)
        for curve in (self._loss_shadow, self._metric_shadow):
            curve.item.setPen(shadow)

    # ---- Qt overrides ---------------------------------------------------------------------------------------
    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "graphics"):
            self._apply_palette()


def _run_label(run: Any) -> str:
    """'2026-11-23 14:05 · finished · 10 epochs · val_acc 93.1 %' for a RunInfo."""
    parts = [run.name, run.status]
    if run.epochs_done:
        parts.append(f"{run.epochs_done} epoch{'s' if run.epochs_done != 1 else ''}")
    for key in ("val_acc", "acc", "val_r2", "val_mae", "val_loss", "loss"):
        if key in run.metrics:
            value = run.metrics[key]
            parts.append(f"{key} {value * 100:.1f} %" if key.endswith("acc") else f"{key} {value:.4g}")
            break
    return " · ".join(parts)


def _fmt_metric(key: str, value: float) -> str:
    return f"{value * 100:.1f} %" if key == "acc" else f"{value:.4g}"
