"""The training coach in the window: the Coach tab of the live views (every warning of the run with its cure, the
ones that cleared greyed, and per layer the share of dead ReLU units and the gradient norm on a log scale) and the
words the Messages dock and the notice above the canvas use.

The warnings come one by one from the worker's `advice` signal (plain dicts, see engine.coach.CoachWarning); the
figures come with the snapshots as snapshot["coach"] (gui.training_worker._Bridge.coach_payload). Like the other
live views, the tab only keeps the latest data while it is hidden and draws when it is shown.
"""
from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import QFrame, QScrollArea, QSplitter, QTextBrowser, QWidget

from .colors import ERROR_COLOR, INFO_COLOR, WARNING_COLOR
from .live_views import GRAD_COLOR, _LiveView, muted
from .plots import GridAxis, grid_axes, plot_background, style_plot

KIND_TITLES = {
    "dead_relu": "Dead ReLUs",
    "vanishing_gradients": "Vanishing gradients",
    "exploding_gradients": "Exploding gradients",
    "overfitting": "Overfitting",
    "lr_too_high": "Learning rate too high",
    "lr_too_low": "Learning rate too low",
}
SEVERITY_COLORS = {"warning": WARNING_COLOR, "info": INFO_COLOR}
SEVERITY_ICONS = {"warning": "▲", "info": "●"}
ROW_PX = 17              # the least height of a layer's row in the bar plots
DEAD_LIMIT = 0.5          # the coach's default dead share: bars above it are drawn in the error colour
HEALTHY_COLOR = "#3b7dd8"
NODE_LINK, COACH_LINK = "node", "coach"  # the schemes of the links: node:<id> shows a node, coach: the tab


def kind_title(kind: str) -> str:
    return KIND_TITLES.get(kind, str(kind).replace("_", " ").capitalize())


def message_level(warning: dict[str, Any]) -> str:
    """The Messages dock's level for a warning ("warning" or "info")."""
    return "warning" if warning.get("severity") == "warning" else "info"


def advice_line(warning: dict[str, Any]) -> str:
    """The warning as one line of the Messages dock: "Coach: <message> Try: <cure>"."""
    return f"Coach: {warning.get('message', '')} Try: {warning.get('cure', '')}".strip()


def node_link(node: str) -> str:
    return f"{NODE_LINK}:{node}"


def link_target(link: str | QUrl) -> tuple[str, str]:
    """("node", node id) or ("coach", "") for a link of the notice or the tab; ("", "") for anything else."""
    text = link.toString() if isinstance(link, QUrl) else str(link)
    scheme, sep, rest = text.partition(":")
    if sep and scheme in (NODE_LINK, COACH_LINK):
        return scheme, rest
    return "", ""


def notice_style(level: str) -> str:
    """The notice's style sheet: a light tint of the level's colour (rgba: Qt reads an 8-digit #hex as #AARRGGBB,
    so "#rrggbb22" would come out as a dark, opaque colour) and a line of it beneath."""
    colour = SEVERITY_COLORS.get(level, INFO_COLOR)
    c = QColor(colour)
    return (f"QFrame#banner {{ background: rgba({c.red()}, {c.green()}, {c.blue()}, 34); "
            f"border-bottom: 2px solid {colour}; }} QLabel#bannerTitle {{ font-weight: 600; color: {colour}; }}")


def notice_title(warning: dict[str, Any]) -> str:
    return f"Coach: {kind_title(str(warning.get('kind', '')))}"


def notice_html(warning: dict[str, Any], more: int = 0) -> str:
    """The notice's text: the message, the cure, a "Show" link to the node the warning names and one to the Coach
    tab (saying how many more warnings it holds)."""
    esc = html.escape
    links = []
    node = warning.get("node")
    if node:
        links.append(f"<a href='{esc(node_link(str(node)))}'>Show {esc(str(node))}</a>")
    others = f" ({more} more)" if more > 0 else ""
    links.append(f"<a href='{COACH_LINK}:'>All advice{others}</a>")
    return (f"<b>{esc(str(warning.get('message', '')))}</b><br><b>Try:</b> {esc(str(warning.get('cure', '')))}"
            f"<br>{' · '.join(links)}")


class _PowerAxis(GridAxis):
    """A bottom axis over log10 values whose labels are the powers of ten themselves (1e-3, 0.1, 10)."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        out = []
        for v in values:
            p = round(v)
            out.append(("1" if p == 0 else "10" if p == 1 else "0.1" if p == -1 else f"1e{p}")
                       if abs(v - p) < 1e-6 else "")
        return out


class _NameAxis(GridAxis):
    """A left axis that names the rows (layers) instead of numbering them."""

    def __init__(self, orientation: str, **kw: Any):
        super().__init__(orientation, **kw)
        self.names: list[str] = []

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        return [(1.0, [float(i) for i in range(len(self.names))])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [self.names[int(v)] if 0 <= int(v) < len(self.names) else "" for v in values]


class CoachView(_LiveView):
    """The run's warnings (newest first; kind and severity in colour, step, node, message and cure; those whose
    condition has cleared greyed) beside two bar plots of the layers in network order: the gradient norm on a
    log scale and the share of ReLU units that never switched on. `node_requested(node)` asks to show a node on
    the canvas (a warning's "Show" link, or a click on a layer's bar)."""

    node_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label.setText("Coach")
        split = QSplitter()
        split.setChildrenCollapsible(False)
        self.browser = QTextBrowser()
        self.browser.setObjectName("coachWarnings")
        self.browser.setOpenLinks(False)
        self.browser.setOpenExternalLinks(False)
        self.browser.anchorClicked.connect(self._on_anchor)
        split.addWidget(self.browser)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setMinimumWidth(260)
        self.scroll = QScrollArea()  # a deep network gets rows tall enough to read, and a scroll bar
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.graphics)
        self.name_axis = _NameAxis("left")
        self.grad_plot = self.graphics.addPlot(row=0, col=0, axisItems={"left": self.name_axis,
                                                                         "bottom": _PowerAxis("bottom")})
        self.dead_plot = self.graphics.addPlot(row=0, col=1, axisItems=grid_axes())
        self.graphics.ci.layout.setColumnStretchFactor(0, 3)
        self.graphics.ci.layout.setColumnStretchFactor(1, 2)
        self.dead_plot.setYLink(self.grad_plot)
        self.dead_plot.getAxis("left").setStyle(showValues=False)
        self.dead_plot.getAxis("left").setWidth(4)
        for plot in (self.grad_plot, self.dead_plot):
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.showGrid(x=True, y=False, alpha=0.18)
            plot.getViewBox().invertY(True)
        self.grad_bars = pg.BarGraphItem(x0=[], width=[], y=[], height=0.62)
        self.dead_bars = pg.BarGraphItem(x0=[], width=[], y=[], height=0.62)
        self.grad_plot.addItem(self.grad_bars)
        self.dead_plot.addItem(self.dead_bars)
        self.dead_limit = pg.InfiniteLine(pos=100 * DEAD_LIMIT, angle=90,
                                          pen=pg.mkPen(ERROR_COLOR, width=1, style=Qt.PenStyle.DashLine))
        self.dead_plot.addItem(self.dead_limit)
        self.dead_plot.setXRange(0, 100, padding=0.02)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        split.addWidget(self.scroll)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.add_page(split)
        self._page = split
        self._warnings: list[dict[str, Any]] = []
        self._active: set[tuple[str, Any]] | None = None  # None: no snapshot yet, every warning stands
        self._figures: dict[str, Any] = {}
        self._rows: list[str] = []
        self._dead_shown = True
        self._apply_palette()
        self.start_run({})

    # ---- data in ----------------------------------------------------------------------------------------------
    def start_run(self, info: dict[str, Any] | None = None) -> None:
        self._warnings, self._active, self._figures, self._rows = [], None, {}, []
        self.detail_label.setText("")
        self.readout_label.setText(" ")
        self._request_render()

    def add_warning(self, warning: dict[str, Any]) -> None:
        """One warning of the coach (the worker's `advice` payload)."""
        self._warnings.append(dict(warning))
        if self._active is not None:
            self._active.add((warning.get("kind"), warning.get("node")))
        self._request_render()

    def set_snapshot(self, snap: dict[str, Any]) -> None:
        coach = snap.get("coach")
        if not coach:
            return
        self._figures = coach
        self._active = {(k, n) for k, n in coach.get("active", [])}
        self._request_render()

    # ---- what it shows (tests read these) -----------------------------------------------------------------------
    def warnings(self) -> list[dict[str, Any]]:
        """The run's warnings, oldest first, each with "cleared": whether its condition has gone since."""
        return [dict(w, cleared=self._cleared(w)) for w in self._warnings]

    def rows(self) -> list[str]:
        """The layers in the bar plots, top to bottom."""
        return list(self._rows)

    def bar_values(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the gradient norm (NaN for a layer without one) and the dead share in % (NaN: not a ReLU)."""
        layers = self._figures.get("layers", {})
        grad = np.array([layers.get(n, {}).get("grad_norm", np.nan) for n in self._rows], dtype=np.float64)
        dead = np.array([100 * layers.get(n, {}).get("dead", np.nan) for n in self._rows], dtype=np.float64)
        return grad, dead

    def text(self) -> str:
        return self.browser.toPlainText()

    def _cleared(self, warning: dict[str, Any]) -> bool:
        if self._active is None:
            return False
        key = (warning.get("kind"), warning.get("node"))
        if key not in self._active:
            return True
        # the same kind and node warned again later: the earlier one was cleared in between
        later = [w for w in self._warnings if (w.get("kind"), w.get("node")) == key]
        return later[-1] is not warning

    # ---- drawing ------------------------------------------------------------------------------------------------
    def _render(self) -> None:
        self.show_page(self._page)
        self._render_warnings()
        self._render_bars()
        self._render_detail()

    def _render_detail(self) -> None:
        n = len(self._warnings)
        standing = sum(not self._cleared(w) for w in self._warnings)
        parts = [f"{n} warning{'s' if n != 1 else ''}" + (f", {standing} standing" if n and standing != n else "")
                 if n else "no warnings"]
        f = self._figures
        if f.get("samples"):
            parts.append(f"a close look every {int(f.get('every', 0))} steps")
        if f.get("step"):
            parts.append(f"step {int(f['step']):,d}")
        self.detail_label.setText(" · ".join(parts))

    def _render_warnings(self) -> None:
        esc = html.escape
        palette = self.palette()
        grey = muted(palette).name()
        text = palette.color(QPalette.ColorRole.Text).name()
        if not self._warnings:
            self.browser.setHtml(
                f"<p style='color:{grey}'>No problems so far. While the network trains, the coach watches for dead "
                f"ReLUs, vanishing or exploding gradients, overfitting and a learning rate that is too high or too "
                f"low, and says here what is wrong and what cures it.</p>")
            return
        blocks = []
        for w in reversed(self._warnings):
            cleared = self._cleared(w)
            severity = str(w.get("severity", "info"))
            colour = grey if cleared else SEVERITY_COLORS.get(severity, INFO_COLOR)
            body = grey if cleared else text
            where = [f"step {int(w.get('step', 0)):,d}", f"epoch {int(w.get('epoch', 0))}"]
            node = w.get("node")
            if node:
                where.append(f"{esc(str(node))} <a href='{esc(node_link(str(node)))}'>Show</a>")
            state = " (cleared)" if cleared else ""
            blocks.append(
                f"<table width='100%' cellspacing='0' cellpadding='3' style='margin-bottom:8px'><tr>"
                f"<td width='3' bgcolor='{colour}'></td><td>"
                f"<span style='color:{colour}; font-weight:600'>{SEVERITY_ICONS.get(severity, '●')} "
                f"{esc(kind_title(str(w.get('kind', ''))))}{state}</span>"
                f"<span style='color:{grey}'> · {' · '.join(where)}</span><br>"
                f"<span style='color:{body}'>{esc(str(w.get('message', '')))}</span><br>"
                f"<span style='color:{body}'><b>Try:</b> {esc(str(w.get('cure', '')))}</span>"
                f"</td></tr></table>")
        scroll = self.browser.verticalScrollBar().value()
        self.browser.setHtml("".join(blocks))
        self.browser.verticalScrollBar().setValue(scroll)

    def _render_bars(self) -> None:
        layers = self._figures.get("layers", {})
        rows = [n for n, f in layers.items() if "dead" in f or "grad_norm" in f]
        self._rows = rows
        self.name_axis.names = rows
        self.name_axis.picture = None
        longest = max((QFontMetrics(self.font()).horizontalAdvance(n) for n in rows), default=20)
        self.name_axis.setWidth(longest + 14)  # pyqtgraph would only widen it after a first, clipped paint
        grad, dead = self.bar_values()
        ys = np.arange(len(rows), dtype=np.float64)
        pos = np.isfinite(grad) & (grad > 0)
        logs = np.log10(grad[pos]) if pos.any() else np.zeros(0)
        lo = math.floor(float(logs.min())) - 1 if len(logs) else -4
        hi = math.ceil(float(logs.max())) + 0.3 if len(logs) else 1
        zero = np.isfinite(grad) & (grad <= 0)  # no gradient at all: a stub at the floor, in the warning colour
        standing = {n for k, n in (self._active or set()) if n} | \
            {w.get("node") for w in self._warnings if not self._cleared(w) and w.get("node")}
        exploding = any(k == "exploding_gradients" for k, _ in (self._active or set()))
        g_ys = np.concatenate([ys[pos], ys[zero]])
        g_w = np.concatenate([logs - lo, np.full(int(zero.sum()), 0.15)])
        g_brush = [pg.mkBrush(WARNING_COLOR if exploding or rows[int(y)] in standing or z else GRAD_COLOR)
                   for y, z in zip(g_ys, [False] * int(pos.sum()) + [True] * int(zero.sum()), strict=True)]
        self.grad_bars.setOpts(x0=np.full(len(g_ys), float(lo)), width=g_w, y=g_ys, height=0.62, brushes=g_brush)
        span = hi - lo
        step = max(1, math.ceil(span / 5))
        self.grad_plot.getAxis("bottom").setTickSpacing(major=step, minor=step)
        self.grad_plot.setXRange(lo, hi, padding=0)
        have = np.isfinite(dead)
        self._show_dead_plot(bool(have.any()))
        self.scroll.setVisible(bool(rows))  # nothing to draw before the coach's first close look
        self.graphics.setMinimumHeight(ROW_PX * len(rows) + 64)
        d_ys = ys[have]
        d_brush = [pg.mkBrush(ERROR_COLOR if dead[int(y)] > 100 * DEAD_LIMIT else HEALTHY_COLOR) for y in d_ys]
        self.dead_bars.setOpts(x0=np.zeros(len(d_ys)), width=np.maximum(dead[have], 0.8), y=d_ys, height=0.62,
                               brushes=d_brush)
        self.dead_plot.setXRange(0, 100, padding=0.02)
        self.grad_plot.setYRange(-0.6, max(len(rows), 1) - 0.4, padding=0)
        self.name_axis.update()
        style = self._title_style
        self.grad_plot.setTitle("gradient norm ‖∇W‖ (log)", **style)
        self.dead_plot.setTitle("dead ReLU units (%)", **style)

    def _show_dead_plot(self, on: bool) -> None:
        """The dead-units plot only for networks with ReLU layers."""
        if on == self._dead_shown:
            return
        self._dead_shown = on
        if on:
            self.graphics.addItem(self.dead_plot, row=0, col=1)
            self.graphics.ci.layout.setColumnStretchFactor(1, 2)
        else:
            self.graphics.removeItem(self.dead_plot)

    # ---- interaction --------------------------------------------------------------------------------------------
    def _on_anchor(self, url: QUrl) -> None:
        scheme, node = link_target(url)
        if scheme == NODE_LINK and node:
            self.node_requested.emit(node)

    def _row_at(self, scene_pos) -> int | None:
        for plot in (self.grad_plot, self.dead_plot):
            if plot.sceneBoundingRect().contains(scene_pos):
                y = plot.getViewBox().mapSceneToView(scene_pos).y()
                i = int(round(y))
                return i if 0 <= i < len(self._rows) and abs(y - i) <= 0.45 else None
        return None

    def _on_mouse_moved(self, pos) -> None:
        i = self._row_at(pos)
        if i is None:
            self.readout_label.setText("Hover over a layer for its figures; click it to show it on the canvas.")
            return
        self.readout_label.setText(self.describe(self._rows[i]))

    def _on_mouse_clicked(self, event) -> None:
        i = self._row_at(event.scenePos())
        if i is not None:
            self.node_requested.emit(self._rows[i])

    def describe(self, node: str) -> str:
        """A layer's figures in words (the readout under the plots)."""
        f = self._figures.get("layers", {}).get(node, {})
        parts = [node]
        if "dead" in f:
            parts.append(f"{100 * f['dead']:.0f} % of {int(f.get('units', 0))} units never on over the last "
                         f"{int(f.get('batches', 0))} sampled batches")
        if "grad_norm" in f:
            parts.append(f"‖∇W‖ {f['grad_norm']:.3g}")
        if "weight_norm" in f:
            parts.append(f"‖W‖ {f['weight_norm']:.3g}")
        if "update_ratio" in f:
            parts.append(f"last step changed the weights by {f['update_ratio']:.2g} of their size")
        return " · ".join(parts)

    def _apply_palette(self) -> None:
        super()._apply_palette()
        if not hasattr(self, "grad_bars"):  # a palette change while the base class is being built
            return
        palette = self.palette()
        self.graphics.setBackground(plot_background(palette))
        self._title_style = {"color": muted(palette).name(), "size": "9pt"}
        for plot in (self.grad_plot, self.dead_plot):
            style_plot(plot, palette)
        edge = pg.mkPen(QColor(plot_background(palette)), width=0.5)
        self.grad_bars.setOpts(pen=edge)
        self.dead_bars.setOpts(pen=edge)
