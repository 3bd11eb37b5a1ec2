"""The Search dock: hyper-parameter search from the window.

The search space and settings are the project's "search" section (`project.extra["search"]`, see engine/search.py);
every change here is one undo step (Document.set_extra), and a spec the engine refuses shows its message under the
table without blocking further edits. Rows come from "Add to the search" in the Inspector's and the Training panel's
right-click menus (or the Add menu here), each with the engine's default range.

Start runs `engine.search.run_search` on a plain thread (SearchSession) that lowers its own priority as the
training worker does; each finished trial comes back as a plain dict through a queued signal, so the window never
waits on it. The model is locked while it runs. The trials fill a table (best first, the best highlighted), a plot
of the score against one parameter and a parallel-coordinates view. "Apply the best" (or Apply on a chosen row)
writes a trial's values into the project as ONE undoable edit. Finished searches of a saved project are kept in
`runs/searches/` and can be shown again from the Search combo.
"""
from __future__ import annotations

import copy
import datetime as dt
import math
import re
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from engine.errors import LayerLoomError
from engine.params import BOOL, CHOICE, FLOAT, INT
from engine.search import (
    INFO_KEYS,
    SearchError,
    apply_params,
    best_trial,
    load_searches,
    resolve_metric,
    search_targets,
    validate_spec,
)

from .colors import ERROR_COLOR, OK_COLOR, WARNING_COLOR
from .commands import MacroCommand, SetParamsCommand, SetSectionCommand
from .document import LockedError
from .evaluation_views import section_label
from .inspector import narrow_combo
from .palette import blend
from .plots import GridAxis, compact_number, plot_background, style_plot

SEARCH_KEY = "search"
LOCK_REASON = "a hyper-parameter search is using the network: press Stop in the Search dock (F8 shows it) to edit"
DEFAULT_SPEC: dict[str, Any] = {"method": "bayes", "trials": 20, "epochs": 3, "seed": 0, "metric": "auto",
                                "prune": True}
METHODS = (("bayes", "Bayesian (TPE)", "learns from the trials so far which values look promising (Optuna's TPE); "
            "the first few trials are random"),
           ("random", "Random", "each trial draws every value at random within its range"),
           ("grid", "Grid", "tries every combination of the listed values (a float range needs Points or Step)"))
METRICS = (("auto", "auto"), ("val_loss", "val_loss"), ("loss", "loss"), ("val_acc", "val_acc"), ("acc", "acc"),
           ("val_mae", "val_mae"), ("mae", "mae"), ("val_r2", "val_r2"), ("r2", "r2"))
STATE_COLORS = {"complete": OK_COLOR, "pruned": WARNING_COLOR, "failed": ERROR_COLOR}
SPACE_COLUMNS = ("Parameter", "Low / values", "High", "Log", "Step", "Points")
C_NAME, C_LOW, C_HIGH, C_LOG, C_STEP, C_N = range(len(SPACE_COLUMNS))
C_VALUES = C_LOW  # a choice's values fill its row from Low to Points
TRIAL_COLUMNS = ("#", "State", "Score", "Seconds")
SCORE_COLORS = ("#3b7dd8", "#8a56c9", "#e0702b")  # worst → best: mid-tones that read on light and dark alike
EMPTY_SPACE = ("Add parameters to search: right-click a layer's parameter in the Inspector, or the learning rate, "
               "batch size, optimizer … in the Training panel, and choose \u201cAdd to the search\u201d; or use "
               "Add here.")
_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


# ---- plain helpers ----------------------------------------------------------------------------------------------
def short_name(target: str) -> str:
    """How a target is shown in tables and plots: linear_1.out_features, optimizer.lr, training.batch_size."""
    return target[5:] if target.startswith("node:") else target


def fmt_value(v: Any, digits: int = 4) -> str:
    """A trial's value for people: 0.0123, 64, Adam, true, none."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _edit_text(v: Any) -> str:
    """A value as written in an editable cell: the shortest text that reads back the same."""
    if isinstance(v, float):
        return repr(v)
    return fmt_value(v)


def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(max(0.0, seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def _seconds_text(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds < 1 else f"{seconds:.1f}" if seconds < 100 else f"{seconds:.0f}"


def parse_number(text: str, kind: str, what: str) -> int | float:
    """A range end typed in the space table; SearchError saying what to type when it is not a number."""
    t = text.strip()
    whole = kind == "int"
    if not (_INT_RE.fullmatch(t) if whole else _FLOAT_RE.fullmatch(t)):
        raise SearchError(f"{what} must be {'a whole number such as 16' if whole else 'a number such as 0.001 or 1e-5'}"
                          f", not {t!r}")
    return int(t) if whole else float(t)


def parse_values(text: str) -> list:
    """A choice's values typed as a list: "16, 32, 64", "Adam, SGD", "true, false", "none, cosine"."""
    inner = text.strip()
    while len(inner) >= 2 and inner[0] in "([{" and inner[-1] in ")]}":
        inner = inner[1:-1].strip()
    out: list = []
    for token in (t.strip().strip("'\"") for t in re.split(r"[,;]", inner)):
        if not token:
            continue
        low = token.lower()
        if low in ("true", "false"):
            out.append(low == "true")
        elif low in ("none", "null"):
            out.append(None)
        elif _INT_RE.fullmatch(token):
            out.append(int(token))
        elif _FLOAT_RE.fullmatch(token):
            out.append(float(token))
        else:
            out.append(token)
    if not out:
        raise SearchError("a choice needs at least one value, separated by commas, e.g. 16, 32, 64")
    return out


def default_entry(project, target: str) -> dict[str, Any]:
    """A ready search-space entry for `target` with a sensible range (engine.search.search_targets'), or, for a
    layer's choice or on/off parameter, all its choices. SearchError saying why a search cannot vary it."""
    for entry in search_targets(project):
        if entry["target"] == target:
            return {k: v for k, v in entry.items() if k not in INFO_KEYS}
    if target.startswith("node:"):
        nid, _, name = target[5:].rpartition(".")
        node = project.graph.nodes.get(nid)
        if node is None:
            raise SearchError(f"there is no layer {nid!r} in the network any more")
        param = next((p for p in node.spec.params if p.name == name), None)
        if param is None:
            raise SearchError(f"a {node.type} layer has no parameter {name!r}")
        if param.kind == BOOL:
            return {"target": target, "kind": "choice", "values": [False, True]}
        if param.kind == CHOICE:
            return {"target": target, "kind": "choice", "values": list(param.choices)}
        if node.type == "Input":
            raise SearchError("the Input's shape comes from the data, so a search cannot vary it")
        if param.kind in (INT, FLOAT):
            raise SearchError(f"{nid}.{name} cannot be searched on its own: changing it alone would break a later "
                              f"layer or change the network's output (the last layer's width is the number of "
                              f"classes, for example); search the hidden layers' sizes instead")
        raise SearchError(f"{nid}.{name} is a list of numbers, which a search cannot vary: search a single number")
    if target == "schedule.type":
        current = (project.schedule or {}).get("type")
        return {"target": target, "kind": "choice", "values": [None, current or "cosine"]}
    if target == "training.shuffle":
        return {"target": target, "kind": "choice", "values": [True, False]}
    if target == "training.seed":
        return {"target": target, "kind": "choice", "values": [0, 1, 2]}
    raise SearchError(f"{target} cannot be searched with this project's settings (an optimizer's safety margin, or a "
                      f"setting the chosen optimizer or schedule does not have)")


def _targets_of(params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(node ids, sections) that a trial's values touch, in order."""
    nodes: list[str] = []
    sections: list[str] = []
    for target in params:
        if target.startswith("node:"):
            nid = target[5:].rpartition(".")[0]
            if nid not in nodes:
                nodes.append(nid)
        else:
            section = target.partition(".")[0]
            if section not in sections:
                sections.append(section)
    return nodes, sections


def apply_values(doc, params: dict[str, Any], text: str) -> bool:
    """Write a trial's values ({target: value}) into the document's project as ONE undo step: apply_params works
    out the new project, and each difference is pushed (layer parameters as SetParamsCommand, the optimizer,
    schedule and training sections as SetSectionCommand) inside one MacroCommand, so one undo restores everything.
    Returns False when the project holds these values already. SearchError when they no longer fit the project,
    LockedError while the model is in use."""
    new = apply_params(doc.project, params)
    nodes, sections = _targets_of(params)
    macro = MacroCommand(text)
    for nid in nodes:
        old = doc.graph.nodes[nid].params
        changed = {k: v for k, v in new.graph.nodes[nid].params.items()
                   if k not in old or old[k] != v or type(old[k]) is not type(v)}
        if changed:
            macro.add(SetParamsCommand(doc.graph, nid, changed))
    for section in sections:
        value = getattr(new, section)
        if getattr(doc.project, section) != value:
            macro.add(SetSectionCommand(doc.project, section, value, on_change=doc.section_changed.emit,
                                        text=f"Change {section}"))
    if not macro.commands:
        return False
    doc.push(macro)
    return True


def order_trials(trials: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    """Complete trials best first, then pruned ones by their last score, then failed ones by number."""
    sign = 1.0 if direction == "minimize" else -1.0
    rank = {"complete": 0, "pruned": 1}

    def key(t):
        v = t.get("value")
        good = isinstance(v, (int, float)) and math.isfinite(v)
        return rank.get(t.get("state"), 2), sign * v if good else math.inf, t.get("number", 0)
    return sorted(trials, key=key)


def _guess_metric(project, spec: dict[str, Any]) -> tuple[str, str]:
    """(metric, direction) a search will use, worked out without loading the data (the split's validation share)."""
    try:
        from engine.data import normalize_settings
        has_val = bool(project.data) and float(normalize_settings(project.data)["split"]["val"]) > 0
    except (LayerLoomError, KeyError, TypeError, ValueError):
        has_val = True
    try:
        return resolve_metric(spec, (project.loss or {}).get("type", ""), has_val)
    except LayerLoomError:
        metric = spec.get("metric", "auto")
        metric = "val_loss" if metric == "auto" else metric
        return metric, "maximize" if metric.removeprefix("val_") in ("acc", "r2") else "minimize"


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _position(entry: dict[str, Any], value: Any) -> float:
    """Where `value` sits on an entry's axis, from 0 (low, or the first choice) to 1; NaN when it is not there."""
    if entry["kind"] == "choice":
        values = entry["values"]
        i = next((k for k, v in enumerate(values) if _same(v, value)), None)
        if i is None:
            i = next((k for k, v in enumerate(values) if v == value), None)
        if i is None:
            return math.nan
        return 0.5 if len(values) == 1 else i / (len(values) - 1)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return math.nan
    low, high = float(entry["low"]), float(entry["high"])
    if entry.get("log") and low > 0 and value > 0:
        low, high, value = math.log10(low), math.log10(high), math.log10(value)
    return 0.5 if high == low else (float(value) - low) / (high - low)


def score_color(t: float) -> QColor:
    """The colour of a score from 0 (the worst shown) to 1 (the best)."""
    t = min(1.0, max(0.0, t))
    a, b = (SCORE_COLORS[0], SCORE_COLORS[1]) if t < 0.5 else (SCORE_COLORS[1], SCORE_COLORS[2])
    return blend(QColor(a), QColor(b), t * 2 if t < 0.5 else t * 2 - 1)


def _goodness(trials: list[dict[str, Any]], direction: str) -> dict[int, float]:
    """Each trial's score scaled to 0 (worst among them) … 1 (best); trials without a score are left out."""
    values = {t["number"]: float(t["value"]) for t in trials
              if isinstance(t.get("value"), (int, float)) and math.isfinite(t["value"])}
    if not values:
        return {}
    lo, hi = min(values.values()), max(values.values())
    out = {}
    for n, v in values.items():
        x = 0.5 if hi == lo else (v - lo) / (hi - lo)
        out[n] = 1.0 - x if direction == "minimize" else x
    return out


# ---- the thread ---------------------------------------------------------------------------------------------------
class SearchSession(QObject):
    """One search on a plain thread. Create it in the GUI thread, connect, then start().

    `trial(dict)`: each trial's record as it ends (number, params, value, state, epochs, seconds, message);
    `finished(dict)`: {"status": finished | stopped | failed, "message", "result" (SearchResult.to_dict() or
    None), "path" (where the search was saved, or None), "seconds"}. The thread hands each payload to a private
    relay signal queued to this object, so receivers run in the GUI thread and get plain data only."""

    trial = Signal(object)
    finished = Signal(object)
    _relay = Signal(str, object)

    def __init__(self, project_dict: dict[str, Any], spec: dict[str, Any], base_dir: str | None,
                 save_to: str | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._project = project_dict
        self._spec = copy.deepcopy(spec)
        self._base_dir = base_dir
        self._save_to = save_to
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._orphaned = False
        self.result: dict[str, Any] | None = None
        self._relay.connect(self._on_relay, Qt.ConnectionType.QueuedConnection)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a SearchSession runs once; make a new one for another search")
        self._thread = threading.Thread(target=self._run, name="layerloom-search", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the search to end: the trial in progress stops after its current step and no new one starts."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _send(self, name: str, payload: dict[str, Any]) -> None:
        if self._orphaned:
            return
        try:
            self._relay.emit(name, payload)
        except RuntimeError:  # the Qt object was deleted under the thread (its window closed): stop
            self._orphaned = True
            self._stop.set()

    @Slot(str, object)
    def _on_relay(self, name: str, payload: dict[str, Any]) -> None:
        getattr(self, name).emit(payload)

    def _run(self) -> None:
        from .training_worker import _yield_to_the_window
        _yield_to_the_window()
        t0 = time.perf_counter()
        out: dict[str, Any] = {"status": "failed", "message": "", "result": None, "path": None}
        try:
            from engine.project import Project
            from engine.search import run_search, save_search
            project = Project.from_dict(self._project)
            result = run_search(project, self._spec, base_dir=self._base_dir,
                                on_trial=lambda record: self._send("trial", dict(record)),
                                should_stop=self._stop.is_set, workers=1)
            out["status"] = "stopped" if result.stopped or self._stop.is_set() else "finished"
            if self._save_to and result.trials:
                try:
                    out["path"] = str(save_search(result, self._save_to))
                except (OSError, LayerLoomError) as e:
                    out["message"] = f"the search could not be saved with the project: {e}"
            out["result"] = result.to_dict()
        except LayerLoomError as e:
            out["message"] = str(e)
        except Exception as e:  # anything at all ends the search in words; the app stays up
            out["message"] = f"{type(e).__name__}: {e}"
            out["traceback"] = traceback.format_exc()
        out["seconds"] = time.perf_counter() - t0
        self.result = out
        self._send("finished", out)


# ---- plots ----------------------------------------------------------------------------------------------------------
class ScorePlot(QWidget):
    """The score of each trial against one chosen parameter: complete trials as dots coloured by score, the best
    as a star, pruned ones as hollow triangles and failed ones as crosses (at the worst score when they have none);
    a log axis for a log-ranged parameter, evenly spaced named ticks for a choice."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(4)
        row = QHBoxLayout()
        row.setContentsMargins(6, 4, 6, 0)
        self.caption = QLabel("Parameter", self)
        row.addWidget(self.caption)
        self.param_combo = narrow_combo(QComboBox(self), 14)
        self.param_combo.setObjectName("scoreParamCombo")
        self.param_combo.setToolTip("the parameter along the horizontal axis")
        self.param_combo.currentIndexChanged.connect(lambda *_: self._draw())
        row.addWidget(self.param_combo, 1)
        col.addLayout(row)
        self.plot_widget = pg.PlotWidget(axisItems={"left": GridAxis("left"), "bottom": GridAxis("bottom")})
        self.plot_widget.setMinimumHeight(120)
        self.plot = self.plot_widget.getPlotItem()
        for name in ("left", "bottom"):
            self.plot.getAxis(name).enableAutoSIPrefix(False)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.scatter = pg.PlotDataItem([], [], pen=None, symbol="o")
        self.plot.addItem(self.scatter)
        self.empty_text = pg.TextItem("", anchor=(0.5, 0.5))
        self.plot.addItem(self.empty_text, ignoreBounds=True)
        col.addWidget(self.plot_widget, 1)
        self._state: dict[str, Any] | None = None
        self._apply_palette()

    def show_state(self, state: dict[str, Any] | None) -> None:
        """Draw a search (its trials, space, metric and direction); the chosen parameter is kept when it is in
        the new one."""
        self._state = state
        space = (state or {}).get("spec", {}).get("space") or []
        wanted = self.param_combo.currentData()
        was = self.param_combo.blockSignals(True)
        self.param_combo.clear()
        for entry in space:
            self.param_combo.addItem(short_name(entry["target"]), entry["target"])
        i = self.param_combo.findData(wanted)
        self.param_combo.setCurrentIndex(i if i >= 0 else 0)
        self.param_combo.blockSignals(was)
        self._draw()

    def point_count(self) -> int:
        return 0 if self.scatter.xData is None else len(self.scatter.xData)

    def _draw(self) -> None:
        state = self._state or {}
        trials = state.get("trials") or []
        space = {e["target"]: e for e in (state.get("spec", {}).get("space") or [])}
        target = self.param_combo.currentData()
        entry = space.get(target)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.Text)
        axis = self.plot.getAxis("bottom")
        log = bool(entry and entry["kind"] != "choice" and entry.get("log") and entry["low"] > 0)
        if entry is not None and entry["kind"] == "choice":
            axis.setTicks([[(i, fmt_value(v)) for i, v in enumerate(entry["values"])]])
        elif log:  # the values' log10 along the axis, labelled with round values
            axis.setTicks([[(math.log10(v), compact_number(v)) for v in log_ticks(entry["low"], entry["high"])], []])
        else:
            axis.setTicks(None)
        self.plot.setLabel("bottom", short_name(target) if target else "", color=text.name())
        self.plot.setLabel("left", state.get("metric") or "score", color=text.name())
        xs, ys, symbols, brushes, pens, sizes = [], [], [], [], [], []
        scored = [t["value"] for t in trials if isinstance(t.get("value"), (int, float)) and math.isfinite(t["value"])]
        direction = state.get("direction", "minimize")
        worst = (max(scored) if direction == "minimize" else min(scored)) if scored else None
        best = best_trial(trials, direction)
        good = _goodness(trials, direction)
        base = plot_background(palette)
        for t in trials if entry is not None else []:
            if target not in (t.get("params") or {}):
                continue
            v = t["params"][target]
            if entry["kind"] == "choice":
                i = next((k for k, c in enumerate(entry["values"]) if _same(c, v)), None)
                if i is None:
                    continue
                x = i + ((t["number"] * 0.618) % 1.0 - 0.5) * 0.3  # a little spread so equal choices do not hide
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and (not log or v > 0):
                x = math.log10(v) if log else float(v)
            else:
                continue
            value = t.get("value")
            has = isinstance(value, (int, float)) and math.isfinite(value)
            state_name = t.get("state")
            if state_name == "complete" and has:
                is_best = best is not None and t["number"] == best["number"]
                color = score_color(good.get(t["number"], 0.5))
                symbols.append("star" if is_best else "o")
                brushes.append(pg.mkBrush(color))
                pens.append(pg.mkPen(text if is_best else base, width=1.2 if is_best else 0.8))
                sizes.append(17 if is_best else 10)
            elif state_name == "pruned" and has:
                symbols.append("t")
                brushes.append(pg.mkBrush(0, 0, 0, 0))
                pens.append(pg.mkPen(WARNING_COLOR, width=1.6))
                sizes.append(10)
            else:
                if not has:
                    if worst is None:
                        continue
                    value = worst
                symbols.append("x")
                brushes.append(pg.mkBrush(ERROR_COLOR))
                pens.append(pg.mkPen(ERROR_COLOR, width=1))
                sizes.append(10)
            xs.append(x)
            ys.append(float(value))
        if xs:
            self.scatter.setData(np.asarray(xs, float), np.asarray(ys, float), pen=None, symbol=symbols,
                                 symbolBrush=brushes, symbolPen=pens, symbolSize=sizes)
            self.empty_text.setText("")
            self.plot.enableAutoRange()
        else:
            self.scatter.setData([], [])
            self.empty_text.setText("no search yet: the trials' scores show here as they finish" if not state else
                                    "the trials' scores show here as they finish" if entry is not None else
                                    "this search varied no parameter")
            self.empty_text.setColor(blend(text, base, 0.45))
            self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            self.empty_text.setPos(0.5, 0.5)

    def _apply_palette(self) -> None:
        palette = self.palette()
        self.plot_widget.setBackground(plot_background(palette))
        style_plot(self.plot, palette)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "plot"):
            self._apply_palette()
            self._draw()


class ParallelCoordinates(pg.PlotWidget):
    """One vertical axis per parameter and one for the score (better upwards); each trial a polyline through its
    values, coloured by its score (blue the worst shown, orange the best), the best drawn thick on top, pruned
    trials dashed and failed ones dotted. Log-ranged parameters use a log axis; a choice's values are evenly
    spaced ticks."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.plot = self.getPlotItem()
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.curves: list[pg.PlotCurveItem] = []
        self._labels: list[pg.TextItem] = []
        self._axes_item = pg.PlotCurveItem(connect="pairs")
        self.plot.addItem(self._axes_item)
        self._state: dict[str, Any] | None = None
        self._drawn_width = 0
        self.setBackground(plot_background(self.palette()))

    def show_state(self, state: dict[str, Any] | None) -> None:
        self._state = state
        self._draw()

    def _clear(self) -> None:
        for item in self.curves + self._labels:
            self.plot.removeItem(item)
        self.curves, self._labels = [], []

    def _label(self, text: str, x: float, y: float, anchor: tuple[float, float], color: QColor,
               bold: bool = False) -> None:
        fill = QColor(plot_background(self.palette()))
        fill.setAlpha(190)
        item = pg.TextItem(text, color=color, anchor=anchor, fill=None if bold else pg.mkBrush(fill))
        if bold:
            font = QFont(self.font())
            font.setBold(True)
            item.setFont(font)
        item.setPos(x, y)
        self.plot.addItem(item, ignoreBounds=True)
        self._labels.append(item)

    def _draw(self) -> None:
        self._clear()
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.Text)
        base = plot_background(palette)
        muted = blend(text, base, 0.45)
        state = self._state or {}
        space = state.get("spec", {}).get("space") or []
        trials = state.get("trials") or []
        direction = state.get("direction", "minimize")
        n = len(space) + 1
        self.plot.setRange(xRange=(-0.7, n - 0.35), yRange=(-0.2, 1.25), padding=0)
        self._drawn_width = self.width()
        if not space:
            self._axes_item.setData([], [])
            self._label("no search yet: each trial shows here as a line through its values and its score"
                        if not state else "this search varied no parameter", (n - 1) / 2, 0.5, (0.5, 0.5), muted)
            return
        xs = np.repeat(np.arange(n, dtype=float), 2)
        ys = np.tile([0.0, 1.0], n)
        self._axes_item.setData(xs, ys, connect="pairs", pen=pg.mkPen(muted, width=1))
        bold = QFont(self.font())
        bold.setBold(True)
        room = max(30, self.width() / n - 6)  # pixels between two axes
        names = [axis_label(e["target"], space) for e in space] + [state.get("metric") or "score"]
        stagger = any(QFontMetrics(bold).horizontalAdvance(t) > room for t in names)
        elide = (lambda t: QFontMetrics(bold).elidedText(t, Qt.TextElideMode.ElideMiddle, int(room * 1.8))) \
            if stagger else (lambda t: t)

        def top(i: int) -> float:  # alternate rows when the names would run into each other
            return 1.03 + (0.1 if stagger and i % 2 else 0.0)
        for i, entry in enumerate(space):
            self._label(elide(names[i]), i, top(i), (0.5, 1.0), text, bold=True)
            if entry["kind"] == "choice":
                for v in entry["values"]:
                    self._label(fmt_value(v), i, _position(entry, v), (1.05, 0.5), muted)
            else:
                self._label(fmt_value(entry["low"], 3), i, 0.0, (1.05, 0.5), muted)
                self._label(fmt_value(entry["high"], 3), i, 1.0, (1.05, 0.5), muted)
                if entry.get("log"):
                    self._label("log", i, -0.04, (0.5, 0.0), muted)
        self._label(elide(names[-1]), n - 1, top(n - 1), (0.5, 1.0), text, bold=True)
        self._label("better ↑", n - 1, -0.04, (0.5, 0.0), muted)
        scored = [float(t["value"]) for t in trials
                  if isinstance(t.get("value"), (int, float)) and math.isfinite(t["value"])]
        if scored:
            lo, hi = min(scored), max(scored)
            best, worst = (lo, hi) if direction == "minimize" else (hi, lo)
            self._label(fmt_value(best), n - 1, 1.0, (1.05, 0.5), muted)
            self._label(fmt_value(worst), n - 1, 0.0, (1.05, 0.5), muted)
        else:
            self._label("the trials show here as they finish", (n - 1) / 2, -0.1, (0.5, 0.5), muted)
        good = _goodness(trials, direction)
        best_t = best_trial(trials, direction)
        # the worst first, so the best lie on top; pruned and failed beneath the complete ones
        order = sorted(trials, key=lambda t: (t.get("state") == "complete", good.get(t["number"], -1.0)))
        for t in order:
            params = t.get("params") or {}
            ys = [_position(e, params[e["target"]]) if e["target"] in params else math.nan for e in space]
            ys.append(good.get(t["number"], math.nan))
            state_name = t.get("state")
            is_best = best_t is not None and t["number"] == best_t["number"]
            if state_name == "complete":
                color = QColor(score_color(good.get(t["number"], 0.5)))
                color.setAlpha(255 if is_best else 190)
                pen = pg.mkPen(color, width=3.2 if is_best else 1.6)
            elif state_name == "pruned":
                pen = pg.mkPen(blend(QColor(WARNING_COLOR), base, 0.45), width=1, style=Qt.PenStyle.DashLine)
            else:
                pen = pg.mkPen(blend(QColor(ERROR_COLOR), base, 0.4), width=1, style=Qt.PenStyle.DotLine)
            curve = pg.PlotCurveItem(np.arange(n, dtype=float), np.asarray(ys, float), pen=pen, connect="finite")
            curve.setZValue(2 if is_best else 1)
            self.plot.addItem(curve)
            self.curves.append(curve)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "plot"):
            self.setBackground(plot_background(self.palette()))
            self._draw()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if hasattr(self, "_drawn_width") and abs(self.width() - self._drawn_width) > 20:
            self._draw()  # the names are fitted to the room between the axes


def log_ticks(low: float, high: float) -> list[float]:
    """Round values for a log axis from `low` to `high`: 1, 2 and 5 of each decade, or only the powers of ten
    when those would crowd it."""
    if not (low > 0 and high > low):
        return []
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for factors in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** k for k in range(lo, hi + 1) for m in factors
                 if low * 0.999 <= m * 10.0 ** k <= high * 1.001]
        if len(ticks) <= 7:
            break
    if len(ticks) < 2:
        ticks = sorted({low, *ticks, high})
    return [float(f"{t:.12g}") for t in ticks]


def axis_label(target: str, space: list[dict[str, Any]]) -> str:
    """A parameter's name on a narrow axis: its own name (lr, out_features) when no other parameter of the space
    has it, else with its node or section (linear_1.out_features)."""
    last = target.rpartition(".")[2]
    clash = sum(1 for e in space if e["target"].rpartition(".")[2] == last) > 1
    return short_name(target) if clash else last


# ---- the dock's widget ----------------------------------------------------------------------------------------------
class SearchView(QWidget):
    """The Search dock. `window` (the MainWindow, optional; kept as `main_window`) is told to lock its panels while
    a search runs and gets `message(str)` for its status bar. Signals for tests and the window:
    `search_started(dict)` (the checked spec), `trial_done(dict)`, `search_finished(dict)` (SearchSession's
    finished payload)."""

    message = Signal(str)
    search_started = Signal(object)
    trial_done = Signal(object)
    search_finished = Signal(object)

    def __init__(self, window: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("SearchView")
        self.main_window = window
        self._doc = None
        self.session: SearchSession | None = None
        self._run_doc = None            # the document the running search locked
        self._live: dict[str, Any] | None = None   # the running (or last, unsaved) search
        self._past: list[dict[str, Any]] = []      # what the Search combo offers, in its order
        self.shown: dict[str, Any] | None = None   # the search in the table and plots
        self._started_at = 0.0
        self._filling = False
        self._build()
        self._eta_timer = QTimer(self)
        self._eta_timer.setInterval(1000)
        self._eta_timer.timeout.connect(self._update_progress)
        self._apply_colors()
        self._refresh_all()

    # ---- building -----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        outer.addWidget(self.splitter)

        # -- the setup: settings, space, its check
        setup = QWidget(self.splitter)
        setup.setObjectName("searchSetup")
        col = QVBoxLayout(setup)
        col.setContentsMargins(10, 4, 6, 6)
        col.setSpacing(5)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        self.method_combo = narrow_combo(QComboBox(setup), 10)
        self.method_combo.setObjectName("searchMethod")
        for value, text, tip in METHODS:
            self.method_combo.addItem(text, value)
            self.method_combo.setItemData(self.method_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.method_combo.setToolTip("how each trial's values are chosen")
        self.trials_spin = self._spin(setup, "searchTrials", 0, 100_000, "auto",
                                      "how many trials (trainings) to run; auto: 20, or the whole grid")
        self.epochs_spin = self._spin(setup, "searchEpochs", 0, 1_000_000, "as in training",
                                      "epochs each trial trains; few are usually enough to compare settings")
        self.seed_spin = self._spin(setup, "searchSeed", 0, 2**31 - 1, "",
                                    "the same seed chooses the same values again")
        self.metric_combo = narrow_combo(QComboBox(setup), 8)
        self.metric_combo.setObjectName("searchMetric")
        for value, text in METRICS:
            self.metric_combo.addItem(text, value)
        self.metric_combo.setToolTip("the figure the search compares: auto is the validation loss when the data has "
                                     "a validation split, else the training loss; accuracy and R² are maximised, "
                                     "the others minimised")
        self.prune_check = QCheckBox("Prune", setup)
        self.prune_check.setObjectName("searchPrune")
        self.prune_check.setToolTip("stop hopeless trials early: after 3 complete trials, a trial worse than the "
                                    "median of the others after an epoch stops there")
        for r, c, text, w in ((0, 0, "Method", self.method_combo), (0, 2, "Trials", self.trials_spin),
                              (1, 0, "Metric", self.metric_combo), (1, 2, "Epochs", self.epochs_spin),
                              (2, 0, "Seed", self.seed_spin)):
            label = QLabel(text, setup)
            label.setBuddy(w)
            label.setToolTip(w.toolTip())
            grid.addWidget(label, r, c)
            grid.addWidget(w, r, c + 1)
        grid.addWidget(self.prune_check, 2, 2, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        col.addLayout(grid)
        self.method_combo.currentIndexChanged.connect(lambda *_: self._commit_setting("method"))
        self.metric_combo.currentIndexChanged.connect(lambda *_: self._commit_setting("metric"))
        self.trials_spin.valueChanged.connect(lambda *_: self._commit_setting("trials"))
        self.epochs_spin.valueChanged.connect(lambda *_: self._commit_setting("epochs"))
        self.seed_spin.valueChanged.connect(lambda *_: self._commit_setting("seed"))
        self.prune_check.toggled.connect(lambda *_: self._commit_setting("prune"))

        head = QHBoxLayout()
        head.setSpacing(4)
        head.addWidget(section_label("Search space", setup), 1)
        self.add_button = QToolButton(setup)
        self.add_button.setObjectName("searchAdd")
        self.add_button.setText("Add")
        self.add_button.setToolTip("add a parameter this project can search, with a default range")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_menu = QMenu(self.add_button)
        self.add_menu.aboutToShow.connect(self._fill_add_menu)
        self.add_button.setMenu(self.add_menu)
        head.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.remove_button = QToolButton(setup)
        self.remove_button.setObjectName("searchRemove")
        self.remove_button.setText("Remove")
        self.remove_button.setToolTip("take the selected rows out of the search (Delete)")
        self.remove_button.clicked.connect(lambda *_: self.remove_rows(self._selected_space_rows()))
        head.addWidget(self.remove_button, 0, Qt.AlignmentFlag.AlignBottom)
        col.addLayout(head)
        self.space_table = QTableWidget(0, len(SPACE_COLUMNS), setup)
        self.space_table.setObjectName("searchSpace")
        self.space_table.setHorizontalHeaderLabels(SPACE_COLUMNS)
        tips = ("what the search varies", "the smallest value tried; for a choice, the values it tries, separated "
                "by commas", "the largest value tried",
                "spread the values evenly on a log scale (for learning rates and sizes)",
                "only multiples of this step above Low (optional)",
                "how many values a grid search takes between Low and High (optional)")
        for i, tip in enumerate(tips):
            self.space_table.horizontalHeaderItem(i).setToolTip(tip)
        self.space_table.verticalHeader().hide()
        self.space_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.space_table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                         | QAbstractItemView.EditTrigger.EditKeyPressed
                                         | QAbstractItemView.EditTrigger.AnyKeyPressed)
        header = self.space_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(36)
        self.space_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.space_table.itemChanged.connect(self._on_space_item_changed)
        self.space_table.installEventFilter(self)
        col.addWidget(self.space_table, 1)
        self.spec_label = QLabel(setup)
        self.spec_label.setObjectName("searchSpecMessage")
        self.spec_label.setWordWrap(True)
        self.spec_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.spec_label)
        self.setup = setup

        # -- the run and the trials
        trials = QWidget(self.splitter)
        col = QVBoxLayout(trials)
        col.setContentsMargins(6, 4, 6, 6)
        col.setSpacing(5)
        run = QHBoxLayout()
        run.setSpacing(6)
        self.start_button = QPushButton("Start", trials)
        self.start_button.setObjectName("searchStart")
        self.start_button.setToolTip("run the search on this project (the network is locked until it ends)")
        self.start_button.clicked.connect(lambda *_: self.start())
        self.stop_button = QPushButton("Stop", trials)
        self.stop_button.setObjectName("searchStop")
        self.stop_button.setToolTip("end the search after the current step; the trials so far are kept")
        self.stop_button.clicked.connect(lambda *_: self.stop())
        self.progress = QProgressBar(trials)
        self.progress.setObjectName("searchProgress")
        self.progress.setFormat("%v / %m trials")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)  # until a search runs
        self.progress.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        run.addWidget(self.start_button)
        run.addWidget(self.stop_button)
        run.addWidget(self.progress, 1)
        col.addLayout(run)
        self.status_label = QLabel(trials)
        self.status_label.setObjectName("searchStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        col.addWidget(self.status_label)
        self.error_label = QLabel(trials)
        self.error_label.setObjectName("searchError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        col.addWidget(self.error_label)
        pick = QHBoxLayout()
        pick.setSpacing(6)
        self.past_combo = narrow_combo(QComboBox(trials), 16)
        self.past_combo.setObjectName("searchPast")
        self.past_combo.setToolTip("this search, or an earlier one of the saved project, to look at again")
        self.past_combo.currentIndexChanged.connect(self._on_past_chosen)
        pick.addWidget(self.past_combo, 1)
        self.apply_best_button = QPushButton("Apply the best", trials)
        self.apply_best_button.setObjectName("searchApplyBest")
        self.apply_best_button.setToolTip("write the best trial's values into the project (one undo step)")
        self.apply_best_button.clicked.connect(lambda *_: self.apply_best())
        self.apply_button = QPushButton("Apply", trials)
        self.apply_button.setObjectName("searchApply")
        self.apply_button.setToolTip("write the selected trial's values into the project (one undo step)")
        self.apply_button.clicked.connect(lambda *_: self.apply_selected())
        pick.addWidget(self.apply_best_button)
        pick.addWidget(self.apply_button)
        col.addLayout(pick)
        self.trials_table = QTableWidget(0, len(TRIAL_COLUMNS), trials)
        self.trials_table.setObjectName("searchTrialsTable")
        self.trials_table.verticalHeader().hide()
        self.trials_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.trials_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.trials_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.trials_table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.trials_table.horizontalHeader().setStretchLastSection(True)
        self.trials_table.itemSelectionChanged.connect(self._update_buttons)
        self.trials_table.itemDoubleClicked.connect(lambda *_: self.apply_selected())
        col.addWidget(self.trials_table, 1)

        # -- the plots
        self.tabs = QTabWidget(self.splitter)
        self.tabs.setObjectName("searchPlots")
        self.tabs.setDocumentMode(True)
        self.score_plot = ScorePlot(self.tabs)
        self.tabs.addTab(self.score_plot, "Score vs parameter")
        self.parallel = ParallelCoordinates(self.tabs)
        self.tabs.addTab(self.parallel, "Parallel coordinates")
        for i, stretch in enumerate((3, 4, 4)):
            self.splitter.setStretchFactor(i, stretch)
        self.splitter.setSizes([440, 460, 480])

    def _spin(self, parent: QWidget, name: str, low: int, high: int, special: str, tip: str) -> QSpinBox:
        spin = QSpinBox(parent)
        spin.setObjectName(name)
        spin.setRange(low, high)
        if special:
            spin.setSpecialValueText(special)
        spin.setKeyboardTracking(False)  # one change per Enter, arrow step or focus change, not per keystroke
        spin.setToolTip(tip)
        return spin

    # ---- the document -------------------------------------------------------------------------------------------
    @property
    def document(self):
        return self._doc

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.is_running()

    def set_document(self, doc) -> None:
        """Follow another document (or none). A search of the previous one is stopped."""
        if doc is self._doc:
            return
        if self._doc is not None and isValid(self._doc):
            self._doc.section_changed.disconnect(self._on_section_changed)
            self._doc.analyzed.disconnect(self._on_analyzed)
            self._doc.path_changed.disconnect(self._on_path_changed)
        if self.running:
            self.session.stop()
        self._doc = doc
        self._live = None
        if doc is not None:
            doc.section_changed.connect(self._on_section_changed)
            doc.analyzed.connect(self._on_analyzed)
            doc.path_changed.connect(self._on_path_changed)
        self._refresh_all()
        self._reload_past()

    def _spec(self) -> dict[str, Any]:
        """A copy of the project's search section ({} when there is none, or it is not an object)."""
        spec = self._doc.project.extra.get(SEARCH_KEY) if self._doc is not None else None
        return copy.deepcopy(spec) if isinstance(spec, dict) else {}

    def _space(self) -> list:
        space = self._spec().get("space")
        return space if isinstance(space, list) else []

    # ---- edits (each one undo step) -------------------------------------------------------------------------------
    def _commit(self, spec: dict[str, Any], text: str) -> bool:
        doc = self._doc
        if doc is None:
            return False
        try:
            doc.set_extra(SEARCH_KEY, spec, text=text)
        except LockedError as e:
            self._say(f"The search settings cannot change now: {e}")
            self._refresh_space()
            return False
        return True

    def _base_spec(self) -> dict[str, Any]:
        spec = self._spec()
        if not spec:
            spec = dict(DEFAULT_SPEC)
            epochs = (self._doc.project.training or {}).get("epochs") if self._doc is not None else None
            if isinstance(epochs, int) and not isinstance(epochs, bool) and 0 < epochs < DEFAULT_SPEC["epochs"]:
                spec["epochs"] = epochs
        spec.setdefault("space", [])
        return spec

    def add_target(self, target: str) -> bool:
        """Add a row for `target` ("optimizer.lr", "node:linear_1.out_features" …) with its default range, as one
        undo step. Says why when the target is there already or a search cannot vary it."""
        doc = self._doc
        if doc is None:
            self._say("Open a project first: a search tries settings of its network")
            return False
        name = short_name(target)
        space = self._space()
        for i, entry in enumerate(space):
            if isinstance(entry, dict) and entry.get("target") == target:
                self.space_table.selectRow(i)
                self._say(f"{name} is in the search already: edit its range in the Search dock")
                return False
        try:
            entry = default_entry(doc.project, target)
        except LayerLoomError as e:
            self._say(f"Cannot add {name} to the search: {e}")
            return False
        spec = self._base_spec()
        spec["space"] = [*spec["space"], entry]
        if not self._commit(spec, f"Add {name} to the search"):
            return False
        self.space_table.selectRow(len(spec["space"]) - 1)
        self._say(f"Added {name} to the search ({self._range_text(entry)}); edit the range in the Search dock")
        return True

    def remove_rows(self, rows: list[int]) -> bool:
        """Take rows out of the search space, as one undo step."""
        spec = self._spec()
        space = list(spec.get("space") or [])
        rows = sorted({r for r in rows if 0 <= r < len(space)})
        if not rows:
            return False
        names = [short_name(str(space[r].get("target", "?"))) if isinstance(space[r], dict) else "?" for r in rows]
        spec["space"] = [e for i, e in enumerate(space) if i not in rows]
        return self._commit(spec, f"Remove {', '.join(names)} from the search" if len(names) < 3
                            else f"Remove {len(names)} parameters from the search")

    def _selected_space_rows(self) -> list[int]:
        return sorted({i.row() for i in self.space_table.selectedIndexes()})

    def _commit_setting(self, key: str) -> None:
        if self._filling or self._doc is None:
            return
        spec = self._base_spec()
        if key == "method":
            spec["method"] = self.method_combo.currentData()
        elif key == "metric":
            spec["metric"] = self.metric_combo.currentData()
        elif key == "prune":
            spec["prune"] = self.prune_check.isChecked()
        else:
            spin = {"trials": self.trials_spin, "epochs": self.epochs_spin, "seed": self.seed_spin}[key]
            value = spin.value()
            if value == 0 and key in ("trials", "epochs"):
                spec.pop(key, None)  # auto: 20 trials (the whole grid); the training section's epochs
            else:
                spec[key] = value
        if spec != self._spec():
            self._commit(spec, f"Search {key}")

    def _on_space_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling:
            return
        row, column = item.row(), item.column()
        spec = self._spec()
        space = list(spec.get("space") or [])
        if not 0 <= row < len(space) or not isinstance(space[row], dict):
            return
        entry = dict(space[row])
        name = short_name(str(entry.get("target", "?")))
        kind = entry.get("kind", "float")
        text = item.text().strip()
        try:
            if column == C_LOG:
                entry["log"] = item.checkState() == Qt.CheckState.Checked
                if entry["log"] and not entry.get("step") == 1:
                    entry.pop("step", None)  # a log scale takes no step
                what = "log scale"
            elif column == C_VALUES and kind == "choice":
                entry["values"] = parse_values(text)
                what = "values"
            elif column in (C_LOW, C_HIGH):
                key = "low" if column == C_LOW else "high"
                entry[key] = parse_number(text, kind, f"{key.capitalize()} of {name}")
                what = key
            elif column in (C_STEP, C_N):
                key = "step" if column == C_STEP else "n"
                if not text:
                    entry.pop(key, None)
                else:
                    entry[key] = parse_number(text, "int" if key == "n" else kind,
                                              f"{'Step' if key == 'step' else 'Points'} of {name}")
                what = "step" if key == "step" else "grid points"
            else:
                return
        except SearchError as e:
            self._show_spec_message(str(e), error=True)
            self._say(str(e))
            QTimer.singleShot(0, self._refresh_space)  # back to what the project holds, after this signal
            return
        if entry == space[row]:
            return
        space[row] = entry
        spec["space"] = space
        self._commit(spec, f"Search {name}: {what}")

    # ---- refreshing -------------------------------------------------------------------------------------------
    def _refresh_all(self) -> None:
        self._refresh_space()
        self._update_buttons()
        if self.shown is None:
            self.show_result(None)

    def _refresh_space(self) -> None:
        """Rewrite the settings and the table from the project (signals quiet), then check the spec."""
        spec = self._spec()
        self._filling = True
        try:
            self.method_combo.setCurrentIndex(max(0, self.method_combo.findData(spec.get("method", "bayes"))))
            self.metric_combo.setCurrentIndex(max(0, self.metric_combo.findData(spec.get("metric", "auto"))))
            for spin, key in ((self.trials_spin, "trials"), (self.epochs_spin, "epochs"), (self.seed_spin, "seed")):
                v = spec.get(key)
                spin.setValue(v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0)
            self.prune_check.setChecked(spec.get("prune", True) is not False)
            space = spec.get("space") if isinstance(spec.get("space"), list) else []
            table = self.space_table
            table.clearSpans()
            table.setRowCount(len(space))
            for r, entry in enumerate(space):
                entry = entry if isinstance(entry, dict) else {}
                target = str(entry.get("target", "?"))
                choice = entry.get("kind") == "choice" or ("values" in entry and "kind" not in entry)
                name = QTableWidgetItem(short_name(target))
                name.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                name.setToolTip(f"{target}: {'a choice' if choice else entry.get('kind', '?')}")
                table.setItem(r, C_NAME, name)
                if choice:
                    values = entry.get("values")
                    item = QTableWidgetItem(", ".join(_edit_text(v) for v in values) if isinstance(values, list)
                                            else "")
                    item.setToolTip("the values this choice tries, separated by commas")
                    table.setItem(r, C_VALUES, item)
                    for c in range(C_VALUES + 1, len(SPACE_COLUMNS)):
                        table.setItem(r, c, QTableWidgetItem())
                    table.setSpan(r, C_VALUES, 1, len(SPACE_COLUMNS) - C_VALUES)
                    continue
                for c, key in ((C_LOW, "low"), (C_HIGH, "high"), (C_STEP, "step"), (C_N, "n")):
                    v = entry.get(key)
                    table.setItem(r, c, QTableWidgetItem("" if v is None else _edit_text(v)))
                log = QTableWidgetItem()
                log.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable)
                log.setCheckState(Qt.CheckState.Checked if entry.get("log") else Qt.CheckState.Unchecked)
                table.setItem(r, C_LOG, log)
            if space:
                table.resizeColumnToContents(C_NAME)
                table.setColumnWidth(C_NAME, min(table.columnWidth(C_NAME), 190))
                numbers = [e for e in space if isinstance(e, dict) and e.get("kind") != "choice"]
                width = max([self.fontMetrics().horizontalAdvance(_edit_text(e.get(k))) for e in numbers
                             for k in ("low", "high")] + [40]) + 14
                table.setColumnWidth(C_LOW, max(width, self.fontMetrics().horizontalAdvance("Low / values") + 14))
                table.setColumnWidth(C_HIGH, width)
                for c in (C_LOG, C_STEP, C_N):
                    table.setColumnWidth(c, table.horizontalHeader().sectionSizeHint(c))
        finally:
            self._filling = False
        self._check_spec()
        self._update_buttons()

    def _check_spec(self) -> dict[str, Any] | None:
        """Check the project's search with the engine; shows its message (or what the search will do) under the
        table. Returns the checked spec, or None."""
        doc = self._doc
        if doc is None:
            self._show_spec_message("Open a project to search its hyper-parameters.")
            return None
        raw = doc.project.extra.get(SEARCH_KEY)
        if raw is None or (isinstance(raw, dict) and not raw.get("space")):
            self._show_spec_message(EMPTY_SPACE)  # not an error: there is nothing to check yet
            return None
        spec = self._spec()
        try:
            checked = validate_spec(doc.project)
        except LayerLoomError as e:
            self._show_spec_message(str(e), error=True)
            return None
        epochs = checked["epochs"] or (doc.project.training or {}).get("epochs", 10)
        grid = " (the whole grid)" if checked["method"] == "grid" and "trials" not in spec else ""
        metric, direction = _guess_metric(doc.project, checked)
        self._show_spec_message(f"{checked['trials']} trials{grid} of {epochs} epoch{'s' if epochs != 1 else ''} "
                                f"over {len(checked['space'])} parameter{'s' if len(checked['space']) != 1 else ''}"
                                f", {direction.removesuffix('e')}ing {metric}")
        return checked

    def spec_message(self) -> str:
        """The line under the space table: the engine's refusal, or what the search will do."""
        return self.spec_label.text()

    def _show_spec_message(self, text: str, error: bool = False) -> None:
        self.spec_label.setText(text)
        self.spec_label.setProperty("error", error)
        self.spec_label.setStyleSheet(f"color: {ERROR_COLOR};" if error else f"color: {self._muted.name()};")

    def _range_text(self, entry: dict[str, Any]) -> str:
        if entry.get("kind") == "choice":
            return "one of " + ", ".join(fmt_value(v) for v in entry.get("values") or [])
        text = f"{fmt_value(entry.get('low'))} to {fmt_value(entry.get('high'))}"
        return text + (", log scale" if entry.get("log") else "")

    def _fill_add_menu(self) -> None:
        menu = self.add_menu
        menu.clear()
        doc = self._doc
        if doc is None:
            menu.addAction("(open a project first)").setEnabled(False)
            return
        try:
            offered = search_targets(doc.project)
        except LayerLoomError as e:
            menu.addAction(f"(nothing to offer: {e})").setEnabled(False)
            return
        present = {e.get("target") for e in self._space() if isinstance(e, dict)}
        titles = {"optimizer": "Optimizer", "training": "Training", "schedule": "Schedule", "node": "Layers"}
        for group in ("optimizer", "training", "schedule", "node"):
            entries = [e for e in offered if e.get("group") == group]
            if not entries:
                continue
            menu.addSection(titles[group])
            for e in entries:
                act = menu.addAction(f"{short_name(e['target'])}  ({self._range_text(e)})")
                act.setToolTip(e.get("label", ""))
                act.setEnabled(e["target"] not in present and not doc.locked)
                act.triggered.connect(lambda *_, t=e["target"]: self.add_target(t))

    def _update_buttons(self) -> None:
        doc = self._doc
        running = self.running
        free = doc is not None and not running
        self.setup.setEnabled(free)
        ok = free and not doc.locked and bool(self._space()) and not self.spec_label.property("error")
        self.start_button.setEnabled(ok)
        self.stop_button.setEnabled(running and not self.session.stopping)
        self.remove_button.setEnabled(free and bool(self._selected_space_rows()))
        shown = self.shown
        has_best = shown is not None and best_trial(shown.get("trials") or [], shown.get("direction", "minimize"))
        can_apply = free and not doc.locked
        self.apply_best_button.setEnabled(bool(can_apply and has_best))
        self.apply_button.setEnabled(bool(can_apply and self.selected_trial() is not None))

    def _on_section_changed(self, key: str) -> None:
        if not isValid(self):
            return
        if key == SEARCH_KEY:
            self._refresh_space()
        else:
            self._check_spec()
            self._update_buttons()

    def _on_analyzed(self, _analysis) -> None:
        if isValid(self) and self._space():
            self._check_spec()
            self._update_buttons()

    def _on_path_changed(self, _path: str) -> None:
        if isValid(self) and not self.running:
            self._reload_past()

    # ---- running ----------------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the project's search on a thread; says why in the dock when it cannot."""
        doc = self._doc
        if doc is None or self.running:
            return False
        self._show_error("")
        if doc.locked:
            self._show_error(f"The search cannot start now: {doc.locked}.")
            return False
        analysis = doc.reanalyze()
        if not analysis.ok:
            first = analysis.errors[0] if analysis.errors else None
            reason = f"{first.node_id}: {first.error}" if first else "the network is empty"
            self._show_error(f"The network cannot train yet: fix the layer marked in red first ({reason}).")
            return False
        try:
            spec = validate_spec(doc.project)
        except LayerLoomError as e:
            self._show_spec_message(str(e), error=True)
            self._show_error(f"The search cannot start: {e}")
            return False
        metric, direction = _guess_metric(doc.project, spec)
        base_dir = str(doc.path.parent) if doc.path else None
        save_to = str(doc.path) if doc.path else None
        session = SearchSession(doc.project.to_dict(), spec, base_dir, save_to, parent=self)
        session.trial.connect(self._on_trial)
        session.finished.connect(self._on_finished)
        self.session = session
        self._run_doc = doc
        self._live = {"trials": [], "spec": spec, "metric": metric, "direction": direction,
                      "budget": spec["trials"], "method": spec["method"], "running": True, "path": None,
                      "saved_at": None, "seconds": 0.0, "stopped": False, "notes": []}
        self._started_at = time.perf_counter()
        session.start()  # first, so that the window sees a running search when it updates its actions
        doc.lock(LOCK_REASON)
        if self.main_window is not None:
            self.main_window.set_model_locked(True, LOCK_REASON)
        self.progress.setRange(0, spec["trials"])
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self._reload_past(select_live=True)
        self._eta_timer.start()
        self._update_progress()
        self._update_buttons()
        saved = "" if save_to else " (save the project to keep its searches)"
        self._say(f"Search started: {spec['trials']} trials; the network is locked until it ends{saved}")
        self.search_started.emit(spec)
        return True

    def stop(self) -> None:
        if self.running:
            self.session.stop()
            self.status_label.setText("stopping after the current step…")
            self._update_buttons()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop a search and wait for it (the window is closing)."""
        if self.running:
            self.session.stop()
            self.session.wait(timeout)

    def _on_trial(self, record: dict[str, Any]) -> None:
        live = self._live
        if live is None or not isValid(self):
            return
        live["trials"].append(record)
        self._update_progress()
        if self.shown is live:
            self.show_result(live)
        self.trial_done.emit(record)

    def _update_progress(self) -> None:
        live = self._live
        if live is None or not live.get("running"):
            self._eta_timer.stop()
            return
        done, budget = len(live["trials"]), max(1, int(live["budget"]))
        self.progress.setRange(0, budget)
        self.progress.setValue(min(done, budget))
        elapsed = time.perf_counter() - self._started_at
        eta = None if done == 0 else elapsed / done * (budget - done)
        counts = {s: sum(1 for t in live["trials"] if t.get("state") == s) for s in ("pruned", "failed")}
        extra = "".join(f" · {n} {s}" for s, n in counts.items() if n)
        if self.session is not None and self.session.stopping:
            self.status_label.setText("stopping after the current step…")
        elif done == 0:
            self.status_label.setText(f"trial 1 of {budget}: loading the data and training… · elapsed "
                                      f"{_eta_text(elapsed)}")
        else:
            self.status_label.setText(f"{done} of {budget} trials done{extra} · elapsed {_eta_text(elapsed)} · "
                                      f"ETA {_eta_text(eta)}")

    def _on_finished(self, payload: dict[str, Any]) -> None:
        if not isValid(self):
            return
        self._eta_timer.stop()
        doc = self._run_doc
        self.session = None
        self._run_doc = None
        if doc is not None and isValid(doc):
            doc.unlock()
        current = self.main_window.document if self.main_window is not None else None
        if self.main_window is not None and (current is None or current is doc or not current.locked):
            self.main_window.set_model_locked(False, "")  # unless another run locked the project shown now
        if doc is not None and doc is not self._doc:  # another project was opened meanwhile: it stopped the search
            self._reload_past()
            self._update_buttons()
            self._say("The search of the previous project was stopped")
            self.search_finished.emit(payload)
            return
        live = self._live
        status = payload.get("status")
        result = payload.get("result")
        if live is not None:
            live["running"] = False
            if result:
                live.update(trials=list(result.get("trials") or live["trials"]), metric=result.get("metric"),
                            direction=result.get("direction"), seconds=result.get("seconds", 0.0),
                            stopped=bool(result.get("stopped")), notes=list(result.get("notes") or []),
                            saved_at=result.get("saved_at"), path=payload.get("path"), budget=result.get("budget"))
        n = len(live["trials"]) if live else 0
        path = payload.get("path")
        if path and live is not None:
            self._live = None  # it is one of the saved searches now
        elif live is not None and not live["trials"]:
            self._live = None
        self._reload_past(select_path=path, select_live=path is None)
        if status == "failed":
            self._show_error(f"The search could not run: {payload.get('message') or 'unknown error'}")
            self.status_label.setText("The search could not run, so nothing was tried:")
            self._say(f"The search could not run: {payload.get('message')}")
        else:
            best = best_trial(live["trials"], live["direction"]) if live else None
            what = f"best {live['metric']} {fmt_value(best['value'])} (trial {best['number']})" if best else \
                "no trial completed"
            verb = "stopped" if status == "stopped" else "finished"
            seconds = payload.get("seconds") or 0.0
            self.status_label.setText(f"Search {verb}: {n} trial{'s' if n != 1 else ''} in {_eta_text(seconds)} · "
                                      f"{what}")
            if payload.get("message"):
                self._show_error(payload["message"])
            self._say(f"Search {verb} after {n} trial{'s' if n != 1 else ''}: {what}")
        self._update_buttons()
        self.search_finished.emit(payload)

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def error_text(self) -> str:
        return "" if self.error_label.isHidden() else self.error_label.text()

    def _say(self, text: str) -> None:
        self.message.emit(text)

    # ---- past searches --------------------------------------------------------------------------------------------
    def _reload_past(self, select_path: str | None = None, select_live: bool = False) -> None:
        doc = self._doc
        items: list[tuple[str, dict[str, Any]]] = []
        if self._live is not None:
            live = self._live
            label = "This search (running)" if live.get("running") else \
                "Latest search (not saved: save the project to keep searches)"
            items.append((label, live))
        if doc is not None and doc.path is not None:
            try:
                saved = load_searches(doc.path)
            except (OSError, LayerLoomError):
                saved = []
            for r in saved:
                state = {"trials": r.trials, "spec": r.spec, "metric": r.metric, "direction": r.direction,
                         "budget": r.budget, "method": r.method, "seconds": r.seconds, "stopped": r.stopped,
                         "notes": r.notes, "saved_at": r.saved_at, "path": str(r.path) if r.path else None,
                         "running": False}
                items.append((self._past_label(state), state))
        keep = self.shown.get("path") if self.shown is not None else None
        self._past = [s for _, s in items]
        was = self.past_combo.blockSignals(True)
        self.past_combo.clear()
        for label, state in items:
            self.past_combo.addItem(label)
            self.past_combo.setItemData(self.past_combo.count() - 1, state.get("path") or label,
                                        Qt.ItemDataRole.ToolTipRole)
        if not items:
            self.past_combo.addItem("No searches yet")
            self.past_combo.setEnabled(False)
        else:
            self.past_combo.setEnabled(True)
        index = 0
        wanted = select_path or (None if select_live else keep)
        if wanted:
            index = next((i for i, s in enumerate(self._past)
                          if s.get("path") and Path(s["path"]) == Path(wanted)), 0)
        self.past_combo.setCurrentIndex(index)
        self.past_combo.blockSignals(was)
        self.show_result(self._past[index] if self._past else None)
        if self._past and not (select_path or select_live or self.running):
            self.status_label.setText(self.summary(self._past[index]))

    def _past_label(self, state: dict[str, Any]) -> str:
        when = dt.datetime.fromtimestamp(state["saved_at"]).strftime("%d %b %H:%M") if state.get("saved_at") else \
            "saved"
        best = best_trial(state["trials"], state["direction"])
        score = f" · best {state['metric']} {fmt_value(best['value'])}" if best else ""
        return f"{when} · {state['method']} · {len(state['trials'])} trials{score}"

    def _on_past_chosen(self, index: int) -> None:
        if 0 <= index < len(self._past):
            state = self._past[index]
            self.show_result(state)
            if not state.get("running"):
                self.status_label.setText(self.summary(state))

    def past_searches(self) -> list[dict[str, Any]]:
        """What the Search combo offers (the running or unsaved search first, then the saved ones, newest first)."""
        return list(self._past)

    def show_past(self, index: int) -> None:
        self.past_combo.setCurrentIndex(index)

    # ---- the trials -----------------------------------------------------------------------------------------------
    def show_result(self, state: dict[str, Any] | None) -> None:
        """Fill the trials table and the plots with a search (a live one, or one read back)."""
        self.shown = state
        table = self.trials_table
        selected = self.selected_trial()
        keep = selected["number"] if selected else None
        trials = (state or {}).get("trials") or []
        direction = (state or {}).get("direction", "minimize")
        metric = (state or {}).get("metric") or "score"
        targets = [e["target"] for e in ((state or {}).get("spec", {}).get("space") or [])]
        headers = [*TRIAL_COLUMNS, *map(short_name, targets)]
        headers[2] = metric
        table.setUpdatesEnabled(False)
        table.blockSignals(True)
        try:
            table.clearContents()
            table.setColumnCount(len(headers))
            table.setHorizontalHeaderLabels(headers)
            ordered = order_trials(trials, direction)
            table.setRowCount(len(ordered))
            best = best_trial(trials, direction)
            best_bg = QBrush(blend(self.palette().color(QPalette.ColorRole.Base), QColor(OK_COLOR), 0.22))
            bold = QFont(table.font())
            bold.setBold(True)
            for r, t in enumerate(ordered):
                is_best = best is not None and t["number"] == best["number"]
                params = t.get("params") or {}
                value = t.get("value")
                cells = [str(t["number"]), t.get("state", "?"),
                         fmt_value(value, 5) if isinstance(value, (int, float)) else "—",
                         _seconds_text(float(t.get("seconds") or 0.0))]
                cells += [fmt_value(params[k]) if k in params else "—" for k in targets]
                tip = t.get("message") or ("the best trial" if is_best else "")
                for c, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    if c == 0:
                        item.setData(Qt.ItemDataRole.UserRole, t["number"])
                    if c in (0, 2, 3) or (c >= len(TRIAL_COLUMNS) and text not in ("—",)
                                           and _FLOAT_RE.fullmatch(text)):
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                    if c == 1:
                        item.setForeground(QBrush(QColor(STATE_COLORS.get(t.get("state"), ERROR_COLOR))))
                    if is_best:
                        item.setBackground(best_bg)
                        item.setFont(bold)
                    if tip:
                        item.setToolTip(tip)
                    table.setItem(r, c, item)
            table.resizeColumnsToContents()
            for c in range(table.columnCount()):
                table.setColumnWidth(c, min(max(table.columnWidth(c), 44), 180))
            if keep is not None:
                for r in range(table.rowCount()):
                    if table.item(r, 0).data(Qt.ItemDataRole.UserRole) == keep:
                        table.selectRow(r)
                        break
        finally:
            table.blockSignals(False)
            table.setUpdatesEnabled(True)
        self.score_plot.show_state(state)
        self.parallel.show_state(state)
        if state is None and not self.running:
            self.status_label.setText("No search yet: add parameters on the left, then press Start.")
        self._update_buttons()

    def summary(self, state: dict[str, Any]) -> str:
        """One line about a search: its trials by state and its best score."""
        trials = state.get("trials") or []
        n = len(trials)
        best = best_trial(trials, state.get("direction", "minimize"))
        best_text = f" · best {state.get('metric')} {fmt_value(best['value'])} (trial {best['number']})" if best \
            else " · no trial completed"
        counts = ", ".join(f"{v} {k}" for k, v in (
            (s, sum(1 for t in trials if t.get("state") == s)) for s in ("complete", "pruned", "failed")) if v)
        return f"{n} trial{'s' if n != 1 else ''}{f' ({counts})' if counts else ''}{best_text}"

    def trial_count(self) -> int:
        return self.trials_table.rowCount()

    def selected_trial(self) -> dict[str, Any] | None:
        rows = self.trials_table.selectionModel().selectedRows() if self.trials_table.selectionModel() else []
        if not rows or self.shown is None:
            return None
        item = self.trials_table.item(rows[0].row(), 0)
        number = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        return next((t for t in self.shown.get("trials") or [] if t["number"] == number), None)

    def select_trial(self, number: int) -> bool:
        for r in range(self.trials_table.rowCount()):
            if self.trials_table.item(r, 0).data(Qt.ItemDataRole.UserRole) == number:
                self.trials_table.selectRow(r)
                return True
        return False

    # ---- applying -------------------------------------------------------------------------------------------------
    def apply_best(self) -> bool:
        """Write the shown search's best trial into the project as one undo step."""
        shown = self.shown
        best = best_trial(shown.get("trials") or [], shown.get("direction", "minimize")) if shown else None
        if best is None:
            self._say("No trial completed, so there is no best one to apply")
            return False
        return self.apply_trial(best)

    def apply_selected(self) -> bool:
        trial = self.selected_trial()
        if trial is None:
            self._say("Choose a trial in the table first")
            return False
        return self.apply_trial(trial)

    def apply_trial(self, trial: dict[str, Any]) -> bool:
        """Write a trial's values into the project as ONE undo step; says what changed, or why not."""
        doc = self._doc
        params = trial.get("params") or {}
        if doc is None or not params:
            self._say("This trial has no values to apply")
            return False
        if self.running:
            self._say("Stop the search first: the network is locked while it runs")
            return False
        shown = ", ".join(f"{short_name(k)} {fmt_value(v)}" for k, v in params.items())
        try:
            changed = apply_values(doc, params, f"Apply search trial {trial['number']}")
        except LayerLoomError as e:  # SearchError (the values no longer fit) or LockedError
            self._show_error(f"Trial {trial['number']} cannot be applied: {e}")
            self._say(f"Trial {trial['number']} cannot be applied: {e}")
            return False
        self._show_error("")
        if not changed:
            self._say(f"The project has trial {trial['number']}'s values already ({shown})")
            return False
        self._say(f"Applied trial {trial['number']}: {shown}. Undo (Ctrl+Z) takes it back")
        return True

    # ---- colours and events ---------------------------------------------------------------------------------------
    def _apply_colors(self) -> None:
        pal = self.palette()
        self._muted = blend(pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base), 0.42)
        self.status_label.setStyleSheet(f"color: {self._muted.name()};")
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR};")
        for label in self.findChildren(QLabel):
            if label.property("section"):
                label.setStyleSheet(f"color: {self._muted.name()};")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "status_label"):
            self._apply_colors()
            self._refresh_space()
            if self.shown is not None:
                self.show_result(self.shown)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched is self.space_table and event.type() == QEvent.Type.KeyPress \
                and event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.space_table.state() \
                != QAbstractItemView.State.EditingState:
            self.remove_rows(self._selected_space_rows())
            return True
        return super().eventFilter(watched, event)


__all__ = ["LOCK_REASON", "ParallelCoordinates", "ScorePlot", "SearchSession", "SearchView", "apply_values",
           "default_entry", "order_trials", "parse_values"]
