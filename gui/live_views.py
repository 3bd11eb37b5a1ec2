"""Live pictures of a training network: its filters, feature maps, weight and gradient histograms, the decision
boundary of a 2-D classifier and an autoencoder's reconstructions, plus the curves, as the tabs of LiveViews.

Every view takes the plain snapshot dicts of engine.callbacks.Snapshots (NumPy arrays, no tensors), builds one
NumPy mosaic per update and hands it to an ImageItem that lives as long as the view (setImage with
autoLevels=False), so an update costs a few array operations, not new scene items. Views that are not on
screen keep only the latest data and draw it when shown.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QStackedLayout,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from .plots import GrowingBuffer, TrainingPlots, grid_axes, plot_background, set_title, steady_range, style_plot
from .theme import is_dark

CLASS_COLORS = ("#3b7dd8", "#e0702b", "#2e9e5b", "#d0508a", "#8a56c9", "#17a2a8", "#d49a1f", "#7d8794",
                "#1f9ed1", "#a0522d")
WEIGHT_COLOR = "#3b7dd8"
GRAD_COLOR = "#e0702b"
NEGATIVE_COLOR = "#2f6fd0"  # filters: weights below zero
POSITIVE_COLOR = "#d8452f"  # and above
# A view drawing a run's new data takes at most this share of the window's time (its last drawing's cost, and
# about as much again for Qt to paint it, sets how long the next waits): snapshots of a small network can come
# twenty times a second, and the window's thread must stay free for the user and not slow the training down.
# What the user does (another layer, another scale) is drawn at once.
LIVE_DRAW_BUDGET = 0.01
MAX_LIVE_WAIT_S = 2.0
MAX_NORM_DOTS = 40         # the norms over time get a dot per snapshot up to this many
MIN_TILE_PX = 12            # tiny kernels (3×3) are blown up so that the 1-pixel gaps stay thin


# ---- NumPy helpers (no Qt) -----------------------------------------------------------------------------------
def grid_columns(n: int, tile_h: int, tile_w: int, aspect: float = 1.5) -> int:
    """Columns for n tiles so that the mosaic's width/height is close to `aspect`."""
    if n <= 1:
        return 1
    cols = math.sqrt(n * aspect * tile_h / max(1, tile_w))
    return int(min(n, max(1, round(cols))))


def mosaic(tiles: np.ndarray, cols: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Tiles (n, h, w) or (n, h, w, c) laid out row by row in `cols` columns with `gap` pixels of `fill`
    between them, in one vectorised reshape (no Python loop over tiles)."""
    n, h, w = tiles.shape[:3]
    extra = tiles.shape[3:]
    rows = max(1, -(-n // cols))
    canvas = np.full((rows * cols, h + gap, w + gap, *extra), fill, dtype=np.float32)
    canvas[:n, :h, :w] = tiles
    canvas = canvas.reshape(rows, cols, h + gap, w + gap, *extra).swapaxes(1, 2)
    canvas = canvas.reshape(rows * (h + gap), cols * (w + gap), *extra)
    return canvas[:-gap, :-gap] if gap else canvas


def upscale(tiles: np.ndarray, factor: int) -> np.ndarray:
    """Each pixel of (n, h, w[, c]) tiles repeated factor × factor times."""
    if factor <= 1:
        return tiles
    return np.repeat(np.repeat(tiles, factor, axis=1), factor, axis=2)


def tile_factor(h: int, w: int) -> int:
    return max(1, -(-MIN_TILE_PX // max(1, max(h, w))))


def normalise(tiles: np.ndarray, per_tile: bool, symmetric: bool) -> np.ndarray:
    """Scale (n, ...) tiles into [0, 1]: symmetric maps 0 to 0.5 (weights: sign matters), otherwise min → 0
    and max → 1; per tile or with one scale for all."""
    t = tiles.astype(np.float32, copy=False)
    axes = tuple(range(1, t.ndim)) if per_tile else None
    if symmetric:
        scale = np.abs(t).max(axis=axes, keepdims=per_tile)
        scale = np.where(scale > 0, scale, 1.0)
        return 0.5 + 0.5 * t / scale
    lo, hi = t.min(axis=axes, keepdims=per_tile), t.max(axis=axes, keepdims=per_tile)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (t - lo) / span


def colorize(image: np.ndarray, lut: np.ndarray | None, gap_rgb: tuple[int, int, int]) -> np.ndarray:
    """A [0, 1] float image with NaN gaps to uint8 RGB: through a (256, 3) LUT for one channel, directly for
    three; the gaps take `gap_rgb`."""
    if image.ndim == 3:  # RGB already
        gaps = np.isnan(image[..., 0])
        rgb = (np.nan_to_num(image, nan=0.0) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    else:
        gaps = np.isnan(image)
        index = (np.nan_to_num(image, nan=0.0) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        rgb = lut[index]
    rgb[gaps] = gap_rgb
    return rgb


def gradient_lut(stops: list[QColor | str], n: int = 256) -> np.ndarray:
    """A (n, 3) uint8 table running evenly through the colour stops."""
    cols = np.array([QColor(c).getRgb()[:3] for c in stops], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(cols))
    t = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(t, pos, cols[:, i]) for i in range(3)], axis=1).round().astype(np.uint8)


VIRIDIS = pg.colormap.get("viridis").getLookupTable(nPts=256, alpha=False).astype(np.uint8)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t), round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def muted(palette: QPalette) -> QColor:
    return _mix(palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window), 0.38)


def _rgb(color: QColor) -> tuple[int, int, int]:
    return color.red(), color.green(), color.blue()


# ---- the shared frame of a live view -------------------------------------------------------------------------
class _DrawQueue:
    """The live views' drawings of a run's new data, one per turn of the event loop. A snapshot reaches every
    view at once; drawn in one go, the first one (each view switching from its message to its picture) kept the
    window from the user for 30-50 ms on a 2-core machine. One at a time, with the window's own events and
    paints between them, no single stall is longer than the slowest view's drawing."""

    def __init__(self) -> None:
        self._views: list[_LiveView] = []
        self._timer: QTimer | None = None

    def add(self, view: _LiveView) -> None:
        if view not in self._views:
            self._views.append(view)
        if self._timer is None:
            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._next)
        if not self._timer.isActive():
            self._timer.start(0)

    def discard(self, view: _LiveView) -> None:
        if view in self._views:
            self._views.remove(view)

    def waiting(self, view: _LiveView) -> bool:
        return view in self._views

    def _next(self) -> None:
        while self._views:
            view = self._views.pop(0)
            if isValid(view):
                view._render_now()
                break
        if self._views and self._timer is not None:
            self._timer.start(0)


DRAW_QUEUE = _DrawQueue()


class _LiveView(QWidget):
    """Header (title, details, controls), a page that is either a message or the picture, a readout line;
    draws only while on screen and follows the palette."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._dirty = False
        self._has_data = False
        self.renders = 0  # pictures drawn (tests read it)
        self._render_seconds = 0.0  # what the last drawing took
        self._render_done = 0.0     # and when it ended (perf_counter)
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(lambda: DRAW_QUEUE.add(self))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        header = QHBoxLayout()
        header.setSpacing(8)
        self.title_label = QLabel("")
        font = QFont(self.title_label.font())
        font.setBold(True)
        self.title_label.setFont(font)
        self.detail_label = QLabel("")
        header.addWidget(self.title_label)
        header.addWidget(self.detail_label)
        header.addStretch(1)
        self.controls = header
        layout.addLayout(header)
        self._stack = QStackedLayout()
        self.message_label = QLabel("")
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self._stack.addWidget(self.message_label)
        layout.addLayout(self._stack, 1)
        self.readout_label = QLabel(" ")
        layout.addWidget(self.readout_label)
        self.show_message("Waiting for the first snapshot of the network…")

    def add_page(self, widget: QWidget) -> None:
        self._stack.addWidget(widget)

    def show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self._stack.setCurrentWidget(self.message_label)

    def message(self) -> str:
        return self.message_label.text() if self._stack.currentWidget() is self.message_label else ""

    def show_page(self, widget: QWidget) -> None:
        self._stack.setCurrentWidget(widget)

    def _request_render(self) -> None:
        """Draw now if on screen (a choice the user made), else when shown."""
        self._has_data = True
        if self.isVisible():
            self._render_now()
        else:
            self._dirty = True

    def _data_arrived(self) -> None:
        """A run's new data: drawn when on screen and the view's drawing budget allows, else a little later (one
        drawing for all that came meanwhile); off screen, when shown."""
        self._has_data = True
        if not self.isVisible():
            self._dirty = True
            return
        wait = 2 * self._render_seconds / LIVE_DRAW_BUDGET - (time.perf_counter() - self._render_done)
        if wait <= 0:
            DRAW_QUEUE.add(self)  # at the next turn of the event loop, after the other views' drawings
        elif not self._render_timer.isActive() and not DRAW_QUEUE.waiting(self):
            self._render_timer.start(int(1000 * min(wait, MAX_LIVE_WAIT_S)) + 1)

    def render_pending(self) -> bool:
        """Whether new data wait for the drawing budget or their turn (tests wait on it)."""
        return self._render_timer.isActive() or DRAW_QUEUE.waiting(self)

    def draw_pending(self) -> None:
        """Draw now what waits for the drawing budget or its turn, if anything does."""
        if self.render_pending():
            self._render_now()

    def _render_now(self) -> None:
        self._render_timer.stop()
        DRAW_QUEUE.discard(self)
        self._dirty = False
        t = time.perf_counter()
        self._render()
        self.renders += 1
        self._render_done = time.perf_counter()
        self._render_seconds = self._render_done - t

    def _render(self) -> None:  # subclasses draw their latest data here
        raise NotImplementedError

    def _apply_palette(self) -> None:
        palette = self.palette()
        colour = muted(palette).name()
        for label in (self.detail_label, self.readout_label, self.message_label):
            label.setStyleSheet(f"color: {colour}")

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._dirty:
            self._render_now()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "readout_label"):
            self._apply_palette()
            if self._has_data:
                self._request_render()


class _ImageCanvas(pg.GraphicsLayoutWidget):
    """One ViewBox holding one ImageItem, aspect locked, row 0 at the top: the stage of every mosaic."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.box = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.box.setMouseEnabled(x=True, y=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(self.image)
        self._shape: tuple[int, ...] = ()

    def show_rgb(self, rgb: np.ndarray, left_margin: float = 0.0) -> None:
        """Put an (H, W, 3) uint8 picture up, re-fitting the view only when its size changed (with room for
        labels left of it when asked)."""
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        if rgb.shape[:2] != self._shape:
            self._shape = rgb.shape[:2]
            h, w = rgb.shape[:2]
            self.box.setRange(xRange=(-left_margin, w), yRange=(0, h), padding=0.01)


class _Grid:
    """Where the tiles of a mosaic are, to turn a position on the picture back into a tile index."""

    def __init__(self, n: int = 0, cols: int = 1, h: int = 1, w: int = 1, gap: int = 1):
        self.n, self.cols, self.h, self.w, self.gap = n, cols, h, w, gap

    def index_at(self, x: float, y: float) -> int | None:
        if x < 0 or y < 0:
            return None
        col, row = int(x // (self.w + self.gap)), int(y // (self.h + self.gap))
        if col >= self.cols or x - col * (self.w + self.gap) >= self.w or y - row * (self.h + self.gap) >= self.h:
            return None
        i = row * self.cols + col
        return i if i < self.n else None


# ---- filters -------------------------------------------------------------------------------------------------
class FiltersView(_LiveView):
    """The kernels of a convolution as a grid of tiles: blue below zero, red above (each filter on its own
    scale, or all on one); several input channels are averaged or one is picked, and a first layer with three
    input channels can show its filters as colour images."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label.setText("Filters")
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("which input channel of each filter to show")
        self.channel_combo.currentIndexChanged.connect(self._on_channel_chosen)
        self.per_tile_check = QCheckBox("Each filter on its own scale")
        self.per_tile_check.setChecked(True)
        self.per_tile_check.setToolTip("off: one colour scale for all filters, so that their strengths compare")
        self.per_tile_check.toggled.connect(self._on_scale_toggled)
        self.controls.addWidget(self.channel_combo)
        self.controls.addWidget(self.per_tile_check)
        self.canvas = _ImageCanvas()
        self.add_page(self.canvas)
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._kernels: np.ndarray | None = None
        self._layer = ""
        self._step = 0
        self._grid = _Grid()
        self._tiles: np.ndarray | None = None
        self._apply_palette()
        self._hint()

    def start_run(self) -> None:
        self._kernels, self._has_data = None, False
        self.channel_combo.clear()
        self.detail_label.setText("")
        self.show_message("Waiting for the first snapshot of the network…")

    def set_snapshot(self, snap: dict[str, Any]) -> None:
        kernels = snap.get("kernels")
        if kernels is None:
            return
        k = np.asarray(kernels, dtype=np.float32)
        if k.ndim == 3:  # Conv1d (out, in, k): each filter a strip one pixel high
            k = k[:, :, None, :]
        if k.ndim != 4:
            return
        if self._kernels is None or k.shape[1] != self._kernels.shape[1]:
            self._fill_channels(k.shape[1])
        self._kernels, self._layer, self._step = k, str(snap.get("kernel_layer", "")), int(snap.get("step", 0))
        self._data_arrived()

    def _fill_channels(self, channels: int) -> None:
        self.channel_combo.blockSignals(True)
        self.channel_combo.clear()
        if channels == 3:
            self.channel_combo.addItem("colour (RGB)", "rgb")
        if channels > 1:
            self.channel_combo.addItem("mean of channels", "mean")
        for c in range(min(channels, 64)):
            self.channel_combo.addItem(f"channel {c}", c)
        self.channel_combo.setCurrentIndex(0)
        self.channel_combo.setVisible(channels > 1)
        self.channel_combo.blockSignals(False)

    def _on_channel_chosen(self, _index: int) -> None:
        if self._kernels is not None:
            self._request_render()

    def _on_scale_toggled(self, _on: bool) -> None:
        if self._kernels is not None:
            self._request_render()

    def mosaic_image(self) -> np.ndarray:
        """The RGB picture now on screen (tests compare two)."""
        return np.asarray(self.canvas.image.image)

    def _render(self) -> None:
        k = self._kernels
        if k is None:
            return
        mode = self.channel_combo.currentData() if k.shape[1] > 1 else 0
        per_tile = self.per_tile_check.isChecked()
        self._tiles = k.mean(axis=1) if mode in ("rgb", "mean") else k[:, int(mode or 0)]  # for the readout
        if mode == "rgb":
            tiles, lut = normalise(k.transpose(0, 2, 3, 1), per_tile, symmetric=False), None  # (out, kh, kw, 3)
        else:
            tiles, lut = normalise(self._tiles, per_tile, symmetric=True), self._lut
        n, h, w = tiles.shape[:3]
        f = tile_factor(h, w)
        big = upscale(tiles, f)
        cols = grid_columns(n, big.shape[1] + 1, big.shape[2] + 1)
        self._grid = _Grid(n, cols, big.shape[1], big.shape[2])
        self.canvas.show_rgb(colorize(mosaic(big, cols), lut, self._gap))
        self.show_page(self.canvas)
        shape = f"{k.shape[1]}×{k.shape[3]}" if k.shape[2] == 1 else f"{k.shape[1]}×{k.shape[2]}×{k.shape[3]}"
        self.detail_label.setText(f"{self._layer} · {n} filters of {shape} · step {self._step:,d}")

    def _on_mouse_moved(self, pos) -> None:
        if self._tiles is None:
            return
        p = self.canvas.box.mapSceneToView(pos)
        i = self._grid.index_at(p.x(), p.y())
        if i is None:
            self._hint()
            return
        t = self._tiles[i]
        self.readout_label.setText(f"filter {i}: min {t.min():+.3g}, max {t.max():+.3g}, "
                                   f"norm {float(np.linalg.norm(t)):.3g}")

    def _hint(self) -> None:
        self.readout_label.setText("Blue: weights below zero, red: above; hover over a filter for its figures.")

    def _apply_palette(self) -> None:
        super()._apply_palette()
        palette = self.palette()
        bg = plot_background(palette)
        self.canvas.setBackground(bg)
        self._gap = _rgb(bg)
        # zero fades into the background, so small weights recede and strong ones stand out in either theme
        self._lut = gradient_lut([NEGATIVE_COLOR, bg, POSITIVE_COLOR])


# ---- feature maps --------------------------------------------------------------------------------------------
class FeatureMapsView(_LiveView):
    """A layer's output for one sample: 2-D maps as a grid of channels (each on its own scale), 1-D sequences
    as a channels × positions heat map, flat vectors as bars. Choosing a layer or sample asks the worker for it
    through `feature_request(layer, sample)`."""

    feature_request = Signal(str, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label.setText("Feature maps")
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("the layer whose output is shown")
        self.layer_combo.setPlaceholderText("layer…")
        self.layer_combo.setMinimumContentsLength(10)
        self.sample_spin = QSpinBox()
        self.sample_spin.setRange(0, 9999)
        self.sample_spin.setPrefix("sample ")
        self.sample_spin.setToolTip("which training sample is fed through the network")
        self.layer_combo.currentIndexChanged.connect(self._on_layer_chosen)
        self.sample_spin.valueChanged.connect(self._on_sample_chosen)
        self.shared_check = QCheckBox("One scale")
        self.shared_check.setToolTip("on: one colour scale for all channels, so that their strengths compare")
        self.shared_check.toggled.connect(self._on_scale_toggled)
        for w in (self.layer_combo, self.sample_spin, self.shared_check):
            self.controls.addWidget(w)
        self.canvas = _ImageCanvas()
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.add_page(self.canvas)
        self.plot_widget = pg.PlotWidget(axisItems=grid_axes())
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=False, y=True, alpha=0.18)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8)
        self.plot.addItem(self.heat)
        self.plot.addItem(self.bars)
        self.add_page(self.plot_widget)
        self._features: np.ndarray | None = None
        self._layer, self._step, self._sample = "", 0, 0
        self._error = ""
        self._grid = _Grid()
        self._apply_palette()

    def start_run(self, layers: list[str] | None = None, samples: int | None = None) -> None:
        self._features, self._has_data = None, False
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()  # the last run's choice means nothing to this one
        self.layer_combo.blockSignals(False)
        self.set_layers(layers or [])
        self.sample_spin.blockSignals(True)
        self.sample_spin.setRange(0, max(0, (samples or 10000) - 1))
        self.sample_spin.setValue(0)
        self.sample_spin.blockSignals(False)
        self.detail_label.setText("")
        self.show_message("Waiting for the first snapshot of the network…")

    def set_layers(self, layers: list[str]) -> None:
        """The layers one can pick (kept in order; the snapshot's own layer is added when missing)."""
        current = self.layer_combo.currentText()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(list(dict.fromkeys(layers)))
        # nothing chosen until a snapshot names its layer, so that picking any layer (the first too) asks for it
        self.layer_combo.setCurrentIndex(-1)
        if current:
            self._select_layer(current)
        self.layer_combo.blockSignals(False)

    def _select_layer(self, layer: str) -> None:
        index = self.layer_combo.findText(layer)
        if index < 0:
            self.layer_combo.addItem(layer)
            index = self.layer_combo.count() - 1
        self.layer_combo.setCurrentIndex(index)

    def channel_count(self) -> int:
        f = self._features
        return 0 if f is None else (1 if f.ndim == 1 else int(f.shape[0]))

    def set_snapshot(self, snap: dict[str, Any]) -> None:
        features = snap.get("features")
        if features is None:
            return
        f = np.asarray(features, dtype=np.float32)
        if f.ndim > 3:  # (C, D, H, W) and the like: fold the extra axes into channels
            f = f.reshape(-1, *f.shape[-2:])
        shown = (getattr(self, "_layer", None), self.sample_spin.value())
        self._features, self._step = f, int(snap.get("step", 0))
        self._layer = str(snap.get("feature_layer", self.layer_combo.currentText()))
        if snap.get("sample_index") is not None:  # ("sample" is the input array itself)
            self.sample_spin.blockSignals(True)
            self.sample_spin.setValue(int(snap["sample_index"]))
            self.sample_spin.blockSignals(False)
        self._error = str(snap.get("view_error") or "")
        self.layer_combo.blockSignals(True)
        self._select_layer(self._layer)
        self.layer_combo.blockSignals(False)
        if shown[0] and (self._layer, self.sample_spin.value()) != shown:
            self._request_render()  # the layer or sample the user asked for: at once
        else:
            self._data_arrived()

    def _on_layer_chosen(self, _index: int) -> None:
        layer = self.layer_combo.currentText()
        if layer:
            self.feature_request.emit(layer, self.sample_spin.value())

    def _on_sample_chosen(self, value: int) -> None:
        layer = self.layer_combo.currentText()
        if layer:
            self.feature_request.emit(layer, value)

    def _on_scale_toggled(self, _on: bool) -> None:
        if self._features is not None:
            self._request_render()

    def mosaic_image(self) -> np.ndarray:
        return np.asarray(self.canvas.image.image)

    def _render(self) -> None:
        f = self._features
        if f is None:
            return
        per_tile = not self.shared_check.isChecked()
        self.shared_check.setVisible(f.ndim > 1)
        if f.ndim == 3:
            tiles = normalise(f, per_tile, symmetric=False)
            c, h, w = tiles.shape
            big = upscale(tiles, tile_factor(h, w))
            cols = grid_columns(c, big.shape[1] + 1, big.shape[2] + 1)
            self._grid = _Grid(c, cols, big.shape[1], big.shape[2])
            self.canvas.show_rgb(colorize(mosaic(big, cols), VIRIDIS, self._gap))
            self.show_page(self.canvas)
            what = f"{c} maps of {h}×{w}"
        elif f.ndim == 2:  # (C, L): one row per channel
            rows = normalise(f, per_tile, symmetric=False)
            self.heat.setImage(colorize(rows, VIRIDIS, self._gap), autoLevels=False, levels=(0, 255))
            self.heat.setRect(QRectF(-0.5, -0.5, f.shape[1], f.shape[0]))  # row i centred on channel i
            self.heat.show()
            self.bars.hide()
            self.plot.setLabel("bottom", "position")
            self.plot.setLabel("left", "channel")
            self.plot.getViewBox().invertY(True)
            self.plot.autoRange(padding=0)
            self.show_page(self.plot_widget)
            what = f"{f.shape[0]} channels × {f.shape[1]} positions"
        else:
            v = f.reshape(-1)
            self.bars.setOpts(x=np.arange(len(v)), height=v, width=0.8)
            self.bars.show()
            self.heat.hide()
            self.plot.setLabel("bottom", "unit")
            self.plot.setLabel("left", "activation")
            self.plot.getViewBox().invertY(False)
            self.plot.autoRange()
            self.show_page(self.plot_widget)
            what = f"{len(v)} units"
        self.detail_label.setText(f"{self._layer} · {what} · sample {self.sample_spin.value()} · "
                                  f"step {self._step:,d}")
        hint = "Hover over a map for its figures." if f.ndim == 3 else " "
        self.readout_label.setText(self._error or hint)  # e.g. the worker saying a chosen layer does not exist

    def _on_mouse_moved(self, pos) -> None:
        f = self._features
        if f is None or f.ndim != 3:
            return
        p = self.canvas.box.mapSceneToView(pos)
        i = self._grid.index_at(p.x(), p.y())
        if i is None:
            self.readout_label.setText("Hover over a map for its figures.")
            return
        m = f[i]
        self.readout_label.setText(f"channel {i}: min {m.min():.3g}, max {m.max():.3g}, mean {m.mean():.3g}, "
                                   f"{100.0 * float((m > 0).mean()):.0f} % active")

    def _apply_palette(self) -> None:
        super()._apply_palette()
        palette = self.palette()
        bg = plot_background(palette)
        self.canvas.setBackground(bg)
        self.plot_widget.setBackground(bg)
        style_plot(self.plot, palette)
        self._gap = _rgb(bg)
        self.bars.setOpts(brush=pg.mkBrush("#3b7dd8"), pen=pg.mkPen(None))


# ---- histograms and norms ------------------------------------------------------------------------------------
class HistogramsView(_LiveView):
    """Per layer: the histogram of its weights and of their gradients at the latest snapshot, the norms of
    both over time, and a table of every layer's current norms (a vanishing or exploding gradient shows as a
    ratio far from the others)."""

    COLUMNS = ("Layer", "Parameter", "‖W‖", "‖∇W‖", "‖∇W‖/‖W‖")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label.setText("Weights and gradients")
        self.layer_combo = QComboBox()
        self.layer_combo.setMinimumContentsLength(10)
        self.layer_combo.setToolTip("the layer whose histograms are shown")
        self.kind_combo = QComboBox()
        self.kind_combo.setToolTip("which of the layer's parameters")
        self.layer_combo.currentIndexChanged.connect(self._on_layer_chosen)
        self.kind_combo.currentIndexChanged.connect(self._on_kind_chosen)
        self.controls.addWidget(self.layer_combo)
        self.controls.addWidget(self.kind_combo)

        page = QWidget()
        grid = QVBoxLayout(page)
        grid.setContentsMargins(0, 0, 0, 0)
        self.graphics = pg.GraphicsLayoutWidget()
        self.weight_plot = self.graphics.addPlot(row=0, col=0, axisItems=grid_axes())
        self.grad_plot = self.graphics.addPlot(row=0, col=1, axisItems=grid_axes())
        self.norm_plot = self.graphics.addPlot(row=1, col=0, axisItems=grid_axes())
        self.grad_norm_plot = self.graphics.addPlot(row=1, col=1, axisItems=grid_axes())
        self.grad_norm_plot.setXLink(self.norm_plot)
        self.graphics.ci.layout.setRowStretchFactor(0, 3)
        self.graphics.ci.layout.setRowStretchFactor(1, 2)
        self.weight_bars = pg.BarGraphItem(x0=[], x1=[], height=[])
        self.grad_bars = pg.BarGraphItem(x0=[], x1=[], height=[])
        self.weight_plot.addItem(self.weight_bars)
        self.grad_plot.addItem(self.grad_bars)
        self.norm_plot.setLabel("bottom", "step")
        self.grad_norm_plot.setLabel("bottom", "step")
        self.weight_norm_curve = self.norm_plot.plot([], [], pen=pg.mkPen(WEIGHT_COLOR, width=1.6), symbol="o",
                                                     symbolSize=4, symbolPen=None, symbolBrush=WEIGHT_COLOR)
        self.grad_norm_curve = self.grad_norm_plot.plot([], [], pen=pg.mkPen(GRAD_COLOR, width=1.6), symbol="o",
                                                        symbolSize=4, symbolPen=None, symbolBrush=GRAD_COLOR)
        for plot in (self.weight_plot, self.grad_plot, self.norm_plot, self.grad_norm_plot):
            plot.setMenuEnabled(False)
            plot.showGrid(x=False, y=True, alpha=0.18)
            plot.getAxis("left").setWidth(48)
            plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.weight_plot.setLabel("bottom", "weight value")
        self.grad_plot.setLabel("bottom", "gradient value")
        grid.addWidget(self.graphics, 3)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMaximumHeight(150)
        # in a short dock the histograms keep most of the height (the table scrolls)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)
        self.table.setMinimumHeight(self.table.fontMetrics().height() * 3)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        grid.addWidget(self.table, 1)
        self.add_page(page)
        self._page = page
        self._layers: dict[str, dict[str, Any]] = {}
        self._norms: dict[tuple[str, str], tuple[GrowingBuffer, GrowingBuffer, GrowingBuffer]] = {}
        self._ranges: dict[tuple, tuple[Any, Any]] = {}  # (plot, layer, kind) -> the x and y ranges set
        self._step = 0
        self._apply_palette()

    def start_run(self) -> None:
        self._layers, self._norms, self._has_data = {}, {}, False
        self._ranges.clear()
        self.layer_combo.clear()
        self.kind_combo.clear()
        self.table.setRowCount(0)
        self.detail_label.setText("")
        self.show_message("Waiting for the first snapshot of the network…")

    def set_snapshot(self, snap: dict[str, Any]) -> None:
        layers = snap.get("layers")
        if not layers:
            return
        step = float(snap.get("step", 0))
        self._step = int(step)
        self._layers = layers
        for layer, kinds in layers.items():  # the norms over time are kept for every layer, shown or not
            for kind, entry in kinds.items():
                key = (layer, kind)
                if key not in self._norms:
                    self._norms[key] = (GrowingBuffer(64), GrowingBuffer(64), GrowingBuffer(64))
                xs, ws, gs = self._norms[key]
                xs.append(step)
                ws.append(entry.get("norm", np.nan))
                gs.append(entry.get("grad_norm", np.nan))
        names = list(layers)
        if [self.layer_combo.itemText(i) for i in range(self.layer_combo.count())] != names:
            current = self.layer_combo.currentText()
            self.layer_combo.blockSignals(True)
            self.layer_combo.clear()
            self.layer_combo.addItems(names)
            self.layer_combo.setCurrentIndex(max(0, self.layer_combo.findText(current)))
            self.layer_combo.blockSignals(False)
            self._fill_kinds()
        self._data_arrived()

    def _fill_kinds(self) -> None:
        kinds = list(self._layers.get(self.layer_combo.currentText(), {}))
        current = self.kind_combo.currentText()
        self.kind_combo.blockSignals(True)
        self.kind_combo.clear()
        self.kind_combo.addItems(kinds)
        if current in kinds:
            self.kind_combo.setCurrentText(current)
        self.kind_combo.blockSignals(False)
        self.kind_combo.setVisible(len(kinds) > 1)

    def _on_layer_chosen(self, _index: int) -> None:
        self._fill_kinds()
        if self._layers:
            self._request_render()

    def _on_kind_chosen(self, _index: int) -> None:
        if self._layers:
            self._request_render()

    def _on_row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        item = self.table.item(rows[0].row(), 0)
        kind = self.table.item(rows[0].row(), 1)
        if item is not None and item.text() != self.layer_combo.currentText():
            self.layer_combo.setCurrentText(item.text())
        if kind is not None and kind.text() != self.kind_combo.currentText():
            self.kind_combo.setCurrentText(kind.text())

    def bar_heights(self) -> tuple[np.ndarray, np.ndarray]:
        """The weight and gradient histograms on screen."""
        return (np.asarray(self.weight_bars.opts.get("height", [])),
                np.asarray(self.grad_bars.opts.get("height", [])))

    def _render(self) -> None:
        layer, kind = self.layer_combo.currentText(), self.kind_combo.currentText()
        entry = self._layers.get(layer, {}).get(kind)
        if entry is None:
            return
        self.show_page(self._page)
        for bars, plot, hist, edges, what in (
                (self.weight_bars, self.weight_plot, entry.get("hist"), entry.get("edges"), "weights"),
                (self.grad_bars, self.grad_plot, entry.get("grad_hist"), entry.get("grad_edges"), "gradients")):
            if hist is None or edges is None:
                bars.setOpts(x0=[], x1=[], height=[])
                set_title(plot, f"{what}: none yet" if what == "gradients" else what, **self._title_style)
                continue
            e = np.asarray(edges, dtype=np.float64)
            heights = np.asarray(hist, dtype=np.float64)
            bars.setOpts(x0=e[:-1], x1=e[1:], height=heights)
            set_title(plot, what, **self._title_style)
            self._steady(plot, (float(e[0]), float(e[-1])), (0.0, float(heights.max(initial=0.0))))
        xs, ws, gs = self._norms[(layer, kind)]
        # a dot per snapshot while they are few; a long run's line alone (dots cost a scatter item each time)
        dots = "o" if len(xs) <= MAX_NORM_DOTS else None
        for curve, plot, values in ((self.weight_norm_curve, self.norm_plot, ws),
                                    (self.grad_norm_curve, self.grad_norm_plot, gs)):
            if curve.opts["symbol"] != dots:
                curve.setSymbol(dots)
            curve.setData(xs.view(), values.view())
            finite = values.view()[np.isfinite(values.view())]
            self._steady(plot, (0.0, float(xs.view()[-1])) if len(xs) else None,
                         (float(finite.min()), float(finite.max())) if len(finite) else None)
        set_title(self.norm_plot, f"‖W‖ of {layer}.{kind} over time", **self._title_style)
        set_title(self.grad_norm_plot, f"‖∇W‖ of {layer}.{kind} over time", **self._title_style)
        self._fill_table()
        self.detail_label.setText(f"{len(self._layers)} layers · step {self._step:,d}")

    def _steady(self, plot: pg.PlotItem, x: tuple[float, float] | None, y: tuple[float, float] | None) -> None:
        """Set the plot's range on a 1-2-5 grid, kept while it still holds the data (plots.steady_range): the
        axes then stay as they are from one snapshot to the next and pyqtgraph does not redraw them (a new
        range for each of four plots cost about 8 ms a snapshot here)."""
        key = (id(plot), self.layer_combo.currentText(), self.kind_combo.currentText())
        old_x, old_y = self._ranges.get(key, (None, None))
        new_x = steady_range(*x, old_x) if x is not None and all(map(math.isfinite, x)) else old_x
        new_y = steady_range(*y, old_y) if y is not None and all(map(math.isfinite, y)) else old_y
        if (new_x, new_y) == (old_x, old_y):
            return
        self._ranges[key] = (new_x, new_y)
        box = plot.getViewBox()
        box.enableAutoRange(False)
        box.setRange(xRange=new_x, yRange=new_y, padding=0.02)

    def _fill_table(self) -> None:
        rows = [(layer, kind, e.get("norm", np.nan), e.get("grad_norm", np.nan))
                for layer, kinds in self._layers.items() for kind, e in kinds.items()]
        self.table.blockSignals(True)
        if self.table.rowCount() != len(rows):
            self.table.setRowCount(len(rows))
            for r in range(len(rows)):
                for c in range(len(self.COLUMNS)):
                    item = QTableWidgetItem()
                    if c >= 2:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    self.table.setItem(r, c, item)
        for r, (layer, kind, w, g) in enumerate(rows):
            ratio = g / w if w and np.isfinite(w) and np.isfinite(g) else np.nan
            for c, text in enumerate((layer, kind, _num(w), _num(g), _num(ratio))):
                self.table.item(r, c).setText(text)
        self.table.blockSignals(False)

    def _apply_palette(self) -> None:
        super()._apply_palette()
        palette = self.palette()
        self.graphics.setBackground(plot_background(palette))
        text = palette.color(QPalette.ColorRole.Text).name()
        self._title_style = {"color": text, "size": "9pt"}
        for plot in (self.weight_plot, self.grad_plot, self.norm_plot, self.grad_norm_plot):
            style_plot(plot, palette)
        self.weight_bars.setOpts(brush=pg.mkBrush(WEIGHT_COLOR), pen=pg.mkPen(plot_background(palette), width=0.5))
        self.grad_bars.setOpts(brush=pg.mkBrush(GRAD_COLOR), pen=pg.mkPen(plot_background(palette), width=0.5))


def _num(v: float) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.3g}"


# ---- decision boundary ---------------------------------------------------------------------------------------
class DecisionBoundaryView(_LiveView):
    """A 2-D classifier's answer over the input plane (binary: the probability of class 1 from one class's tint
    through the background to the other's; several classes: each region in its class's tint), with the
    training points on top in their class colours."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label.setText("Decision boundary")
        self.plot_widget = pg.PlotWidget()
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "x₁")
        self.plot.setLabel("left", "x₂")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="8pt", verSpacing=-6)
        self.scatters: list[pg.ScatterPlotItem] = []
        self.add_page(self.plot_widget)
        self._boundary: dict[str, Any] | None = None
        self._step = 0
        self._extent: tuple[float, ...] = ()
        self._class_names: list[str] = []
        self._apply_palette()

    def start_run(self) -> None:
        self._boundary, self._has_data, self._extent = None, False, ()
        self.detail_label.setText("")
        self.show_message("Waiting for the first snapshot of the network…")

    def set_snapshot(self, snap: dict[str, Any]) -> None:
        boundary = snap.get("boundary")
        if boundary is None:
            return
        self._boundary, self._step = boundary, int(snap.get("step", 0))
        if boundary.get("class_names"):
            self.set_class_names(list(boundary["class_names"]))
        self._data_arrived()

    def _class_tints(self, n: int) -> np.ndarray:
        bg = plot_background(self.palette())
        amount = 0.7 if is_dark(self.palette()) else 0.62  # pale enough that the points stand out on top
        return np.array([_rgb(_mix(QColor(CLASS_COLORS[i % len(CLASS_COLORS)]), bg, amount)) for i in range(n)],
                        dtype=np.uint8)

    def _render(self) -> None:
        b = self._boundary
        if b is None:
            return
        grid = np.asarray(b["grid"], dtype=np.float32)
        n_classes = int(b.get("n_classes", 2))
        bg = plot_background(self.palette())
        if b.get("kind", "probability" if n_classes <= 2 else "class") == "probability":
            tints = self._class_tints(2)
            lut = gradient_lut([QColor(*tints[0]), bg, QColor(*tints[1])])
            rgb = colorize(np.clip(grid, 0.0, 1.0), lut, _rgb(bg))
        else:
            tints = self._class_tints(n_classes)
            index = np.clip(np.nan_to_num(grid, nan=0).round().astype(np.int64), 0, n_classes - 1)
            rgb = tints[index]
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        xmin, xmax, ymin, ymax = (float(v) for v in b["extent"])
        # grid values sit on the extent's corners (row i at ymin + i·dy): the cells reach half a step beyond
        h, w = grid.shape
        dx, dy = (xmax - xmin) / max(1, w - 1), (ymax - ymin) / max(1, h - 1)
        self.image.setRect(QRectF(xmin - dx / 2, ymin - dy / 2, w * dx, h * dy))  # row 0 at the bottom
        if self._extent != (xmin, xmax, ymin, ymax):
            self._extent = (xmin, xmax, ymin, ymax)
            self.plot.setRange(xRange=(xmin, xmax), yRange=(ymin, ymax), padding=0)
        self._draw_points(np.asarray(b.get("points", np.empty((0, 2))), dtype=np.float32).reshape(-1, 2),
                          np.asarray(b.get("labels", np.empty(0)), dtype=np.int64).reshape(-1),
                          max(n_classes, 2))
        self.show_page(self.plot_widget)
        kind = "probability of class 1" if n_classes <= 2 else f"{n_classes} classes"
        if n_classes <= 2 and len(self._class_names) >= 2:
            kind = f"probability of {self._class_names[1]}"
        self.detail_label.setText(f"{kind} · {len(b.get('labels', ()))} points · step {self._step:,d}")

    def _draw_points(self, points: np.ndarray, labels: np.ndarray, n_classes: int) -> None:
        ring = pg.mkPen(plot_background(self.palette()), width=1)
        while len(self.scatters) < n_classes:  # one item per class, made once, updated in place after
            i = len(self.scatters)
            color = CLASS_COLORS[i % len(CLASS_COLORS)]
            scatter = pg.ScatterPlotItem(size=7, pen=ring, brush=pg.mkBrush(color))
            self.plot.addItem(scatter)
            self.scatters.append(scatter)
        for i, scatter in enumerate(self.scatters):
            mine = labels == i
            scatter.setData(x=points[mine, 0], y=points[mine, 1], pen=ring)
            scatter.setVisible(i < n_classes)
        if len(self.legend.items) != n_classes:
            self.legend.clear()
            for i in range(n_classes):
                self.legend.addItem(self.scatters[i], self._class_names[i] if i < len(self._class_names)
                                    else f"class {i}")

    def set_class_names(self, names: list[str] | None) -> None:
        """Names for the legend (the run's classes); None or empty: class 0, class 1 …"""
        names = [str(n) for n in names or []]
        if names != self._class_names:
            self._class_names = names
            self.legend.clear()

    def point_count(self) -> int:
        return sum(len(s.data) for s in self.scatters if s.isVisible())

    def _apply_palette(self) -> None:
        super()._apply_palette()
        palette = self.palette()
        self.plot_widget.setBackground(plot_background(palette))
        style_plot(self.plot, palette)


# ---- reconstructions -----------------------------------------------------------------------------------------
class ReconstructionView(_LiveView):
    """An autoencoder's inputs (upper row of each band) above what it makes of them (lower row)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label.setText("Reconstructions")
        self.canvas = _ImageCanvas()
        self.add_page(self.canvas)
        self._labels: list[pg.TextItem] = []
        self._data: tuple[np.ndarray, np.ndarray] | None = None
        self.image_shape: tuple[int, ...] | None = None  # (C, H, W) of flattened image samples, when known
        self._step = 0
        self._apply_palette()

    def start_run(self) -> None:
        self._data, self._has_data = None, False
        self.detail_label.setText("")
        self.show_message("Waiting for the first snapshot of the network…")

    def set_snapshot(self, snap: dict[str, Any]) -> None:
        rec = snap.get("reconstruction")
        if rec is None:
            return
        self._data = (np.asarray(rec["inputs"], dtype=np.float32), np.asarray(rec["outputs"], dtype=np.float32))
        self._step = int(snap.get("step", 0))
        self._data_arrived()

    def _as_images(self, x: np.ndarray) -> np.ndarray:
        """(n, C, H, W) → (n, H, W) grey or (n, H, W, 3) colour; flat (n, F) samples take the run's image shape,
        or a square when F is one."""
        shape = self.image_shape
        if x.ndim == 2 and shape and int(np.prod(shape)) == x.shape[1]:
            x = x.reshape(len(x), *shape)
        if x.ndim == 2:
            side = int(math.isqrt(x.shape[1]))
            x = x[:, None, :side * side].reshape(len(x), 1, side, side) if side * side == x.shape[1] \
                else x[:, None, None, :]
        if x.ndim == 3:
            x = x[:, None]
        return x.transpose(0, 2, 3, 1) if x.shape[1] == 3 else x.mean(axis=1)

    def mosaic_image(self) -> np.ndarray:
        return np.asarray(self.canvas.image.image)

    def _render(self) -> None:
        if self._data is None:
            return
        inputs, outputs = self._data
        n = min(len(inputs), len(outputs))
        a, b = self._as_images(inputs[:n]), self._as_images(outputs[:n])
        lo, hi = float(min(a.min(), 0.0)), float(max(a.max(), 1.0))  # the inputs' range; [0, 1] images stay put
        a, b = np.clip((a - lo) / (hi - lo), 0, 1), np.clip((b - lo) / (hi - lo), 0, 1)
        h, w = a.shape[1:3]
        cols = max(1, min(n, grid_columns(n, 2 * h + 1, w + 1, aspect=1.8)))
        bands = -(-n // cols)
        f = tile_factor(h, w)
        gap = max(1, f)
        a, b = upscale(a, f), upscale(b, f)
        pad = bands * cols - n
        if pad:  # blank tiles complete the last band
            blank = np.full((pad, *a.shape[1:]), np.nan, dtype=np.float32)
            a, b = np.concatenate([a, blank]), np.concatenate([b, blank])
        # each band: `cols` inputs above their outputs; a wider space between bands keeps the pairs together
        th = a.shape[1] + gap
        spacer = np.full((max(2, th // 4), 0, 3), 0, dtype=np.uint8)
        parts = []
        for k in range(bands):
            pair = np.concatenate([a[k * cols:(k + 1) * cols], b[k * cols:(k + 1) * cols]])
            band = colorize(mosaic(pair, cols, gap=gap), self._grey, self._gap)
            if parts:
                parts.append(np.broadcast_to(np.array(self._gap, dtype=np.uint8),
                                             (spacer.shape[0], band.shape[1], 3)))
            parts.append(band)
        rgb = np.ascontiguousarray(np.concatenate(parts))
        self.canvas.show_rgb(rgb, left_margin=0.3 * a.shape[2])
        self._place_labels(bands, th, 2 * th - gap + spacer.shape[0], a.shape[1])
        self.show_page(self.canvas)
        mse = float(np.mean((inputs[:n] - outputs[:n]) ** 2))
        self.detail_label.setText(f"{n} samples · upper: input, lower: reconstruction · MSE {mse:.4g} · "
                                  f"step {self._step:,d}")

    def _place_labels(self, bands: int, row_step: int, band_step: int, tile_h: int) -> None:
        color = muted(self.palette())
        while len(self._labels) < 2 * bands:
            text = pg.TextItem("in" if len(self._labels) % 2 == 0 else "out", anchor=(1, 0.5), color=color)
            self.canvas.box.addItem(text)
            self._labels.append(text)
        for i, label in enumerate(self._labels):
            band, row = divmod(i, 2)
            label.setVisible(band < bands)
            label.setColor(color)
            label.setPos(-2, band * band_step + row * row_step + tile_h / 2)

    def _apply_palette(self) -> None:
        super()._apply_palette()
        bg = plot_background(self.palette())
        self.canvas.setBackground(bg)
        self._gap = _rgb(bg)
        self._grey = gradient_lut(["#000000", "#ffffff"])


# ---- the tabs ------------------------------------------------------------------------------------------------
class LiveViews(QTabWidget):
    """The live views of a run as tabs; those that cannot apply to the run are disabled, saying why in their
    tooltip. `start_run(info)` takes the worker's "started" payload: "metric", "total_steps", "steps_per_epoch"
    and, when known, "sample_shape" (or "input_shape"), "task" ("reconstruction" for autoencoders),
    "kernel_layer" (None: no convolution) or "conv_layers", "layers" / "feature_layers", "val_samples" /
    "train_samples" (or "n_samples"), "classes", "image_shape"; what it does not say is decided by the first
    snapshot's contents. The Coach tab (gui.coach_view.CoachView) takes the coach's warnings through
    add_advice() and its figures from the snapshots; its title counts the warnings."""

    feature_request = Signal(str, int)
    node_requested = Signal(str)  # the Coach tab asks to show a node on the canvas

    NOT_APPLICABLE = {
        "filters": "Filters: for networks with a convolution layer",
        "features": "Feature maps: this run sends no layer outputs",
        "histograms": "Histograms: this run sends no snapshots of the weights",
        "boundary": "Decision boundary: for classifiers with a 2-D input",
        "reconstructions": "Reconstructions: for autoencoders (networks trained to give back their input)",
    }

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDocumentMode(True)
        self.curves = TrainingPlots()
        self.filters = FiltersView()
        self.features = FeatureMapsView()
        self.histograms = HistogramsView()
        self.boundary = DecisionBoundaryView()
        self.reconstructions = ReconstructionView()
        self._views = {"curves": self.curves, "filters": self.filters, "features": self.features,
                       "histograms": self.histograms, "boundary": self.boundary,
                       "reconstructions": self.reconstructions}
        for key, title in (("curves", "Curves"), ("filters", "Filters"), ("features", "Feature maps"),
                           ("histograms", "Histograms"), ("boundary", "Decision boundary"),
                           ("reconstructions", "Reconstructions")):
            self.addTab(self._views[key], title)
        from .coach_view import CoachView  # here: coach_view builds on this module's _LiveView
        self.coach = CoachView()
        self._views["coach"] = self.coach
        self.addTab(self.coach, "Coach")
        self.setTabToolTip(self.indexOf(self.coach), "What the training coach noticed in this run, with the cure")
        self.coach.node_requested.connect(self.node_requested)
        self.features.feature_request.connect(self.feature_request)
        self._decided: dict[str, bool | None] = {}
        self._snapshots = 0
        self.start_run({})

    # ---- public API -----------------------------------------------------------------------------------------
    def end_run(self) -> None:
        """The run is over: what waited for a drawing budget is drawn now, so its end shows at once."""
        self.curves.flush()
        for view in (self.filters, self.features, self.histograms, self.boundary, self.reconstructions):
            view.draw_pending()

    def start_run(self, info: dict[str, Any]) -> None:
        self.curves.start_run(info)
        self.filters.start_run()
        samples = info.get("n_samples") or info.get("val_samples") or info.get("train_samples")
        self.features.start_run(list(info.get("feature_layers") or info.get("layers") or []), samples)
        self.histograms.start_run()
        self.boundary.start_run()
        self.boundary.set_class_names(info.get("classes"))
        self.reconstructions.start_run()
        self.coach.start_run(info)
        self._count_advice()
        shape = info.get("image_shape")
        self.reconstructions.image_shape = tuple(shape) if shape else None
        self._snapshots = 0
        sample_shape = info.get("input_shape", info.get("sample_shape"))
        task = info.get("task")
        if "conv_layers" in info:
            conv: Any = info["conv_layers"]
        elif "kernel_layer" in info:  # the worker names the convolution it shows, None when there is none
            conv = [info["kernel_layer"]] if info["kernel_layer"] else []
        else:
            conv = None
        if sample_shape is not None:
            boundary: bool | None = (list(sample_shape) == [2] and task not in ("regression", "reconstruction")
                                     and info.get("metric") not in ("mae", "regression"))
        elif task in ("regression", "reconstruction"):
            boundary = False
        else:
            boundary = None
        self._decided = {
            "filters": None if conv is None else bool(conv),
            "features": None,
            "histograms": None,
            "boundary": boundary,
            "reconstructions": None if task is None else task == "reconstruction",
        }
        for key, applies in self._decided.items():
            self._set_applicable(key, applies is not False)

    def add_steps(self, steps: dict[str, Any]) -> None:
        self.curves.add_steps(steps)

    def add_epoch(self, logs: dict[str, Any]) -> None:
        self.curves.add_epoch(logs)

    def add_snapshot(self, snap: dict[str, Any]) -> None:
        """Route one snapshot to the views it has data for; after the first, a view the run gives nothing to
        is switched off (and back on if its data turn up later)."""
        self._snapshots += 1
        present = {"filters": snap.get("kernels") is not None, "features": snap.get("features") is not None,
                   "histograms": bool(snap.get("layers")), "boundary": snap.get("boundary") is not None,
                   "reconstructions": snap.get("reconstruction") is not None}
        self.filters.set_snapshot(snap)
        self.features.set_snapshot(snap)
        self.histograms.set_snapshot(snap)
        self.boundary.set_snapshot(snap)
        self.reconstructions.set_snapshot(snap)
        if snap.get("coach"):
            self.coach.set_snapshot(snap)
            self._count_advice()
        for key, here in present.items():
            if here and self._decided[key] is not True:
                self._decided[key] = True
                self._set_applicable(key, True)
            elif not here and self._decided[key] is None:
                if key == "features" and self.features.layer_combo.count():
                    # no layer shown by default (no convolution), but any layer can be asked for
                    self._decided[key] = True
                    self.features.show_message("Choose a layer above to see its output for one sample.")
                    continue
                self._decided[key] = False
                self._set_applicable(key, False)

    def add_advice(self, warning: dict[str, Any]) -> None:
        """One warning of the training coach (the worker's `advice` payload) for the Coach tab."""
        self.coach.add_warning(warning)
        self._count_advice()

    def show_coach(self) -> None:
        self.setCurrentWidget(self.coach)

    def _count_advice(self) -> None:
        standing = sum(not w["cleared"] for w in self.coach.warnings())
        text, index = f"Coach ({standing})" if standing else "Coach", self.indexOf(self.coach)
        if self.tabText(index) != text:  # a new tab text lays the whole window out again
            self.setTabText(index, text)

    def is_applicable(self, key: str) -> bool:
        return self.isTabEnabled(self.indexOf(self._views[key]))

    def view(self, key: str) -> QWidget:
        return self._views[key]

    # ---- internals ------------------------------------------------------------------------------------------
    def _set_applicable(self, key: str, on: bool) -> None:
        view = self._views[key]
        index = self.indexOf(view)
        self.setTabEnabled(index, on)
        self.setTabToolTip(index, "" if on else self.NOT_APPLICABLE[key])
        if not on:
            view.show_message(self.NOT_APPLICABLE[key].split(": ", 1)[1].capitalize() + ".")
            if self.currentIndex() == index:
                self.setCurrentIndex(0)
        elif not view._has_data:
            view.show_message("Waiting for the first snapshot of the network…")
