"""Why did the network say that? The explain panel: one evaluated sample with its true and predicted class and
the top probabilities, explained by saliency, Grad-CAM (a chosen convolution layer) or integrated gradients for a
chosen class; images get the heat map over the picture beside the heat map alone, other inputs (table rows,
token ids, sequences) a bar per feature. For tables, permutation feature importance on the validation split.

The work runs on a plain thread, one job at a time (`ExplainRunner`): the request is plain data (the project as a
dict, the weights' path, the sample as a NumPy array) and the answer comes back through a queued signal as plain
data too. A newer request of the same kind replaces the one waiting; an answer that is no longer wanted is
dropped. Errors (a class out of range, weights that do not fit, anything else) are shown in words in the panel.

`hook_explain(window, evaluation_view)` connects the evaluation view's "Explain this prediction" and "Feature
importance" to one non-modal `ExplainDialog` per window, so the window (and a training run) carry on while it is
open.
"""
from __future__ import annotations

import html
import json
import re
import threading
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.explain import GRADCAM, INTEGRATED_GRADIENTS, SALIENCY, colormap, overlay

from .colors import ERROR_COLOR, INFO_COLOR, OK_COLOR
from .evaluation_views import _as_int_labels, _muted, image_range, images_of, is_table, section_label, to_qimage
from .inspector import scrolling_page
from .palette import blend

CLASSIFICATION, BINARY, REGRESSION, RECONSTRUCTION = "classification", "binary", "regression", "reconstruction"
METHOD_NAMES = {SALIENCY: "Saliency", GRADCAM: "Grad-CAM", INTEGRATED_GRADIENTS: "Integrated gradients"}
CONV_TYPE = re.compile(r"^Conv(Transpose)?[12]d$")  # the layers Grad-CAM can read (engine.explain.conv_layers)
TOP_CLASSES = 5
MAX_SIDEWAYS_BARS = 40  # up to this many features get horizontal bars with their names; more are drawn by position
IMPORTANCE_REPEATS = 5
POSITIVE_COLOR = "#e0702b"  # pushes the chosen class's score up (the warm end of the heat map)
NEGATIVE_COLOR = "#3b7dd8"  # pushes it down (the cold end)

# What each method shows, in plain words, and its formula (y_c: the network's score for class c).
HOW_TO_READ = {
    SALIENCY: (
        "Saliency asks: if one input value changed a little, how much would the score of the chosen class move? "
        "It is quick and sharp but noisy, and it shows sensitivity rather than evidence: a value can matter "
        "because changing it would help another class.",
        "S(x) = |∂y_c / ∂x|"),
    GRADCAM: (
        "Grad-CAM looks inside the network, at the feature maps A¹, A², … of one convolution layer. Each map is "
        "weighed by how much the chosen class's score grows when the map grows (α_k, its average gradient); the "
        "weighted maps are added, only positive evidence is kept, and the result is stretched to the input's "
        "size. A late layer gives coarse but meaningful regions, an early one finer, edge-like detail.",
        "L_c = ReLU(Σ_k α_k · A^k),   α_k = mean over positions of ∂y_c / ∂A^k"),
    INTEGRATED_GRADIENTS: (
        "Integrated gradients walk in small steps from a blank baseline x′ (zeros: a black image, or the average "
        "of standardised features) to the sample and add up the gradients on the way. Each input value gets its "
        "share of the score's change, and the shares add up to y_c(x) − y_c(x′).",
        "IG(x) = (x − x′) · ∫₀¹ ∂y_c(x′ + t·(x − x′)) / ∂x dt"),
}
IMAGE_HINT = {
    SALIENCY: "red where a small change of the pixel would move the score most",
    GRADCAM: "red where the layer saw the most evidence for the class",
    INTEGRATED_GRADIENTS: "red where the pixels carried most of the score (for or against the class)",
}
BARS_HINT = {
    SALIENCY: "Each bar is the gradient ∂y_c/∂x of one input: orange, a larger value would raise {score}; blue, "
              "it would lower it; a short bar means it hardly cares.",
    GRADCAM: "Each bar is the convolution layer's evidence at that position: orange speaks for {what}, blue "
             "against it.",
    INTEGRATED_GRADIENTS: "Each bar is that input's share of {score}: orange raised it (compared with the baseline "
                          "of zeros), blue lowered it. The bars add up to y_c(x) − y_c(x′).",
}
IMPORTANCE_HINT = ("Each bar is how much the network's {metric} on the validation split drops when that feature's "
                   "values are shuffled among the samples, so that the network can no longer use it (the mean of "
                   "{repeats} shuffles; the whiskers show ± one standard deviation). A long bar: the network relies "
                   "on that feature. A bar near zero: it ignores it. A bar below zero: shuffling helped by chance, "
                   "so the feature is of no use either. Features that tell the same story (a radius and an area, "
                   "say) can each look unimportant, because with one shuffled the network still has the other.")
NO_WEIGHTS = "Train the network first: there are no trained weights to explain yet (Train F5, then Evaluate F7)."


# ---- the work, on a plain thread ----------------------------------------------------------------------------------
def _error_text(e: BaseException) -> str:
    """An exception as one sentence for the panel: the engine's errors say what to do; others name their type."""
    from engine.errors import LayerLoomError

    text = str(e).strip()
    if not isinstance(e, LayerLoomError) or not text:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


class _Names:
    """Feature names and the vocabulary of the project's data, loaded once per data setting (worker thread)."""

    def __init__(self) -> None:
        self._key: str | None = None
        self._value: tuple[list[str] | None, list[str] | None] = (None, None)

    def get(self, data: dict | None, base_dir: str | None) -> tuple[list[str] | None, list[str] | None]:
        if not data:
            return None, None
        key = json.dumps([data, base_dir], sort_keys=True, default=str)
        if key != self._key:
            from engine.data import load_data

            bundle = load_data(data, base_dir=base_dir)
            names = list(bundle.feature_names) if bundle.feature_names else None
            vocab = list(bundle.vocabulary) if bundle.vocabulary else None
            self._key, self._value = key, (names, vocab)
        return self._value


def run_job(request: dict[str, Any], names: _Names | None = None) -> dict[str, Any]:
    """One explain job as plain data in, plain data out (no Qt): `kind` "sample" (explain_sample) or "features"
    (explain_features on the validation split)."""
    from engine.explain import explain_features, explain_sample
    from engine.project import Project

    project = Project.from_dict(request["project"])
    if request["kind"] == "features":
        rows = explain_features(project, request["weights"], split="val", base_dir=request.get("base_dir"),
                                repeats=IMPORTANCE_REPEATS, seed=0)
        return {"rows": rows}
    e = explain_sample(project, request["weights"], request["x"], method=request["method"],
                       target=request.get("target"), layer=request.get("layer"),
                       image_shape=request.get("image_shape"))
    out: dict[str, Any] = {"explanation": e.to_dict(), "feature_names": None, "vocabulary": None}
    if request.get("names"):
        try:
            out["feature_names"], out["vocabulary"] = (names or _Names()).get(project.data, request.get("base_dir"))
        except Exception:  # names are a courtesy: bars are labelled by position without them
            pass
    return out


class ExplainRunner(QObject):
    """Explain jobs on a plain thread, one at a time. `submit(request)` returns the job's number; `done(dict)`
    brings the answer in the GUI thread (the request's `kind`, `serial` and any `tag`, plus the job's output or
    `error`). A request made while a job runs waits; a newer one of the same kind replaces it, and an answer to a
    request that has since been replaced is dropped."""

    done = Signal(object)
    _finished = Signal(object)  # from the worker thread, queued to the GUI thread

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._serial = 0
        self._latest: dict[str, int] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._thread: threading.Thread | None = None
        self._names = _Names()
        self._finished.connect(self._on_finished)

    def busy(self) -> bool:
        return self._thread is not None

    def pending(self) -> list[str]:
        """The kinds of the requests waiting for the running job."""
        return list(self._pending)

    def submit(self, request: dict[str, Any]) -> int:
        self._serial += 1
        request = {**request, "serial": self._serial}
        self._latest[request["kind"]] = self._serial
        if self._thread is not None:
            self._pending[request["kind"]] = request
        else:
            self._start(request)
        return self._serial

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for the running job's thread (tests, closing)."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    def _start(self, request: dict[str, Any]) -> None:
        self._thread = threading.Thread(target=self._work, args=(request,), name="explain", daemon=True)
        self._thread.start()

    def _work(self, request: dict[str, Any]) -> None:
        try:
            result = run_job(request, self._names)
        except Exception as e:  # shown in words in the panel; the app stays up
            result = {"error": _error_text(e)}
        result.update({k: request.get(k) for k in ("kind", "serial", "tag")})
        try:
            self._finished.emit(result)
        except RuntimeError:  # the window closed while the job ran
            pass

    def _on_finished(self, result: dict[str, Any]) -> None:
        self._thread = None
        if self._pending:
            first = min(self._pending.values(), key=lambda r: r["serial"])
            del self._pending[first["kind"]]
            self._start(first)
        if result.get("serial") == self._latest.get(result.get("kind")):
            self.done.emit(result)


# ---- small widgets ------------------------------------------------------------------------------------------------
def _rgb_image(rgb: np.ndarray) -> QImage:
    data = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = data.shape[:2]
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class Picture(QWidget):
    """An image scaled to fit a square of `side` pixels (small images as crisp pixels), with a caption below and
    a text in its place while there is no image."""

    def __init__(self, caption: str, side: int, parent: QWidget | None = None):
        super().__init__(parent)
        self._side = side
        self._pixmap: QPixmap | None = None
        self._caption = caption
        self._placeholder = ""
        self.image: QImage | None = None
        fm = QFontMetrics(self.font())
        self.setFixedSize(side, side + fm.height() + 6)

    def set_image(self, image: QImage | None, placeholder: str = "") -> None:
        self.image = image
        self._pixmap = QPixmap.fromImage(image) if image is not None else None
        self._placeholder = placeholder
        self.update()

    def set_caption(self, caption: str) -> None:
        self._caption = caption
        self.update()

    def caption(self) -> str:
        return self._caption

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        pal = self.palette()
        box = QRect(0, 0, self._side, self._side)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(blend(pal.color(QPalette.ColorRole.Window), pal.color(QPalette.ColorRole.Text), 0.06))
        p.drawRoundedRect(box, 4, 4)
        if self._pixmap is not None:
            size = self._pixmap.size().scaled(box.size() - QSize(8, 8), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(0, 0, size.width(), size.height())
            target.moveCenter(box.center())
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._pixmap.width() > self._side // 2)
            p.drawPixmap(target, self._pixmap)
        elif self._placeholder:
            p.setPen(_muted(pal))
            p.drawText(box.adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self._placeholder)
        p.setPen(pal.color(QPalette.ColorRole.Text))
        fm = QFontMetrics(self.font())
        p.drawText(QRect(0, self._side + 3, self._side, fm.height()), Qt.AlignmentFlag.AlignHCenter,
                   fm.elidedText(self._caption, Qt.TextElideMode.ElideRight, self._side))


class ColorScale(QWidget):
    """The heat map's colours from 0 to 1, with their meaning at both ends."""

    def __init__(self, width: int, parent: QWidget | None = None):
        super().__init__(parent)
        self._image = _rgb_image(colormap(np.linspace(0.0, 1.0, 256)[None, :]))
        fm = QFontMetrics(self.font())
        self.setFixedSize(width, 12 + fm.height() + 4)
        self.setToolTip("The heat map's colours: blue where the input did not matter for the chosen class, red "
                        "where it mattered most (each map is scaled to its own largest value).")

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(QRect(0, 0, self.width(), 12), self._image)
        p.setPen(_muted(self.palette()))
        fm = QFontMetrics(self.font())
        r = QRect(0, 14, self.width(), fm.height())
        p.drawText(r, Qt.AlignmentFlag.AlignLeft, "did not matter")
        p.drawText(r, Qt.AlignmentFlag.AlignRight, "mattered most")


class ProbabilityBars(QWidget):
    """The classes the network found most likely: a row per class with its name, a bar and the percentage; the
    predicted class in the accent colour, the true class in green, each tagged."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: list[tuple[str, float, str]] = []  # (class, probability, tag)
        self._placeholder = ""
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._relayout()

    def set_rows(self, rows: list[tuple[str, float, str]], placeholder: str = "") -> None:
        self._rows = list(rows)
        self._placeholder = placeholder
        self._relayout()

    def rows(self) -> list[tuple[str, float, str]]:
        return list(self._rows)

    def _row_height(self) -> int:
        return QFontMetrics(self.font()).height() + 8

    def _relayout(self) -> None:
        self.setFixedHeight(max(1, len(self._rows)) * self._row_height() + 2)
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(240, self.height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        pal = self.palette()
        fm = QFontMetrics(self.font())
        text, muted = pal.color(QPalette.ColorRole.Text), _muted(pal)
        if not self._rows:
            p.setPen(muted)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self._placeholder)
            return
        h = self._row_height()
        name_w = min(max(fm.horizontalAdvance(n) for n, _, _ in self._rows) + 8, self.width() // 3)
        pct_w = fm.horizontalAdvance("100.0 %") + 6
        tag_w = max(fm.horizontalAdvance(t) for _, _, t in self._rows) + 6 if any(t for _, _, t in self._rows) else 0
        bar_w = max(20, self.width() - name_w - pct_w - tag_w - 4)
        track = blend(pal.color(QPalette.ColorRole.Window), text, 0.08)
        for k, (name, prob, tag) in enumerate(self._rows):
            y = k * h
            p.setPen(text)
            p.drawText(QRect(0, y, name_w - 6, h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(name, Qt.TextElideMode.ElideRight, name_w - 6))
            bar = QRect(name_w, y + 4, bar_w, h - 8)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(track)
            p.drawRoundedRect(bar, 3, 3)
            color = QColor(INFO_COLOR if "predicted" in tag else OK_COLOR if "true" in tag else muted)
            fill = QRect(bar.left(), bar.top(), max(2, round(bar_w * min(1.0, max(0.0, prob)))), bar.height())
            p.setBrush(color)
            p.drawRoundedRect(fill, 3, 3)
            p.setPen(text)
            p.drawText(QRect(name_w + bar_w + 4, y, pct_w, h), Qt.AlignmentFlag.AlignRight |
                       Qt.AlignmentFlag.AlignVCenter, f"{prob:.1%}".replace("%", " %"))
            if tag:
                p.setPen(color)
                p.drawText(QRect(name_w + bar_w + pct_w + 8, y, tag_w, h), Qt.AlignmentFlag.AlignLeft |
                           Qt.AlignmentFlag.AlignVCenter, tag)


def _bar_plot(parent: QWidget):
    """A still pyqtgraph plot for bars (no mouse panning, no menu), in the palette's colours."""
    import pyqtgraph as pg

    plot = pg.PlotWidget(parent)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    plot.showGrid(x=True, y=False, alpha=0.15)
    plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    for side in ("left", "bottom"):
        plot.getAxis(side).enableAutoSIPrefix(False)  # plain numbers, not "(x0.001)"
    return plot


def _style(plot, palette: QPalette) -> None:
    from .plots import style_plot

    plot.setBackground(palette.color(QPalette.ColorRole.Base))
    style_plot(plot.getPlotItem(), palette)
    text = palette.color(QPalette.ColorRole.Text)
    for side in ("left", "bottom"):
        plot.getAxis(side).setTextPen(text)


# ---- the panel ----------------------------------------------------------------------------------------------------
class ExplainPanel(QWidget):
    """One evaluated sample explained. `set_context(result, project, weights, base_dir)` gives it the evaluation
    (the dict of engine.evaluate.evaluate), the project as a dict, the trained weights' path and the project's
    folder; `show_sample(index)` explains the sample at that index of the result, `show_features()` computes the
    permutation importance of a table's features. `computed(dict)` is emitted with each answer shown (or error)."""

    computed = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ExplainPanel")
        self.runner = ExplainRunner(self)
        self.runner.done.connect(self._on_done)
        self._result: dict[str, Any] | None = None
        self._project: dict[str, Any] | None = None
        self._weights: str | None = None
        self._base_dir: str | None = None
        self._context = 0
        self._index: int | None = None
        self._image: np.ndarray | None = None  # the sample as an image (C, H, W), or None for other data
        self._range = (0.0, 1.0)
        self.explanation: dict[str, Any] | None = None  # the last one shown (Explanation.to_dict())
        self.error: str | None = None  # the last sample error shown
        self.importance_rows: list[dict[str, Any]] | None = None
        self.importance_error: str | None = None
        self.bars = None  # the per-feature BarGraphItem of the last bar chart
        self.importance_bars = None  # the importance BarGraphItem
        self._bar_plot = None
        self._importance_plot = None
        self._bar_labels: list[str] = []
        self._bars_have_values = False  # sideways bars labelled "name = value"
        self._importance_errors = None
        self._importance_ticks: list[tuple[float, str]] = []

        page, body = scrolling_page(self, "explainPage", (16, 14, 16, 16))
        self.title = QLabel("Explain a prediction", page)
        tf = QFont(self.font())
        tf.setPointSizeF(tf.pointSizeF() * 1.3)
        tf.setBold(True)
        self.title.setFont(tf)
        body.addWidget(self.title)
        self.subtitle = QLabel(page)
        self.subtitle.setTextFormat(Qt.TextFormat.RichText)
        self.subtitle.setWordWrap(True)
        body.addWidget(self.subtitle)

        # ---- the sample: left column (picture, probabilities), right column (choices, result, how to read it)
        self.sample_box = QWidget(page)
        row = QHBoxLayout(self.sample_box)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(22)
        left = QVBoxLayout()
        left.setSpacing(6)
        self.sample_title = section_label("Sample", page)
        left.addWidget(self.sample_title)
        self.sample_picture = Picture("", 168, page)
        left.addWidget(self.sample_picture)
        self.prob_title = section_label(f"Most likely classes (top {TOP_CLASSES})", page)
        left.addWidget(self.prob_title)
        self.prob_bars = ProbabilityBars(page)
        self.prob_bars.setMinimumWidth(250)
        left.addWidget(self.prob_bars)
        left.addStretch(1)
        row.addLayout(left, 0)

        right = QVBoxLayout()
        right.setSpacing(6)
        right.addWidget(section_label("Explain", page))
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(10)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        self.class_combo = QComboBox(page)
        self.class_combo.setToolTip("The class whose score is explained: the predicted one shows why the network "
                                    "chose it; the true one why it did not choose that.")
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_label = QLabel("Class", page)
        form.addRow(self.class_label, self.class_combo)
        self.method_combo = QComboBox(page)
        self.method_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for key in (SALIENCY, GRADCAM, INTEGRATED_GRADIENTS):
            self.method_combo.addItem(METHOD_NAMES[key], key)
        form.addRow("Method", self.method_combo)
        self.layer_combo = QComboBox(page)
        self.layer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.layer_combo.setToolTip("The convolution layer whose feature maps Grad-CAM weighs: the last one sees "
                                    "whole shapes, earlier ones edges and strokes.")
        self.layer_label = QLabel("Layer", page)
        form.addRow(self.layer_label, self.layer_combo)
        right.addLayout(form)
        self.status = QLabel(page)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right.addWidget(self.status)

        self.images_box = QWidget(page)
        pics = QVBoxLayout(self.images_box)
        pics.setContentsMargins(0, 4, 0, 0)
        pics.setSpacing(4)
        pair = QHBoxLayout()
        pair.setSpacing(12)
        self.overlay_picture = Picture("Heat map over the sample", 224, page)
        self.heat_picture = Picture("Heat map alone", 224, page)
        pair.addWidget(self.overlay_picture)
        pair.addWidget(self.heat_picture)
        pair.addStretch(1)
        pics.addLayout(pair)
        self.scale = ColorScale(2 * 224 + 12, page)
        pics.addWidget(self.scale)
        right.addWidget(self.images_box)

        self.bars_host = QWidget(page)
        QVBoxLayout(self.bars_host).setContentsMargins(0, 4, 0, 0)
        right.addWidget(self.bars_host)
        self.tokens_label = QLabel(page)
        self.tokens_label.setTextFormat(Qt.TextFormat.RichText)
        self.tokens_label.setWordWrap(True)
        right.addWidget(self.tokens_label)

        right.addWidget(section_label("How to read it", page))
        self.reading = QLabel(page)
        self.reading.setTextFormat(Qt.TextFormat.RichText)
        self.reading.setWordWrap(True)
        self.reading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reading.setMinimumWidth(420)
        right.addWidget(self.reading)
        right.addStretch(1)
        row.addLayout(right, 1)
        body.addWidget(self.sample_box)

        # ---- the features of a table
        self.features_box = QWidget(page)
        fcol = QVBoxLayout(self.features_box)
        fcol.setContentsMargins(0, 8, 0, 0)
        fcol.setSpacing(6)
        fcol.addWidget(section_label("Feature importance", page))
        self.features_hint = QLabel("Which features does the network rely on, over all samples? Each feature is "
                                    "shuffled among the validation samples in turn, and the drop of the score is "
                                    "measured.", page)
        self.features_hint.setWordWrap(True)
        self.features_hint.setProperty("muted", True)
        fcol.addWidget(self.features_hint)
        self.features_button = QPushButton("Compute feature importance", page)
        self.features_button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.features_button.clicked.connect(self.show_features)
        fcol.addWidget(self.features_button)
        self.features_status = QLabel(page)
        self.features_status.setWordWrap(True)
        self.features_status.setTextFormat(Qt.TextFormat.RichText)
        fcol.addWidget(self.features_status)
        self.importance_host = QWidget(page)
        QVBoxLayout(self.importance_host).setContentsMargins(0, 0, 0, 0)
        fcol.addWidget(self.importance_host)
        self.importance_reading = QLabel(page)
        self.importance_reading.setWordWrap(True)
        fcol.addWidget(self.importance_reading)
        body.addWidget(self.features_box)
        body.addStretch(1)

        self.class_combo.currentIndexChanged.connect(self._on_choice)
        self.method_combo.currentIndexChanged.connect(self._on_method)
        self.layer_combo.currentIndexChanged.connect(self._on_choice)
        self._apply_colors()
        self._reset()

    # ---- public --------------------------------------------------------------------------------------------------
    @property
    def index(self) -> int | None:
        """The sample shown, by its index in the evaluation result."""
        return self._index

    @property
    def result(self) -> dict[str, Any] | None:
        return self._result

    def set_context(self, result: dict[str, Any] | None, project: dict[str, Any] | None, weights: str | None,
                    base_dir: str | None = None) -> None:
        """What to explain with: a new evaluation (or project or weights) drops what was shown."""
        same = (result is self._result and project == self._project and weights == self._weights
                and base_dir == self._base_dir)
        self._project, self._weights, self._base_dir = project, weights, base_dir
        if same:
            return
        self._result = result
        self._context += 1
        self._reset()

    def show_sample(self, index: int) -> None:
        """Explain the sample at `index` of the evaluation result: the predicted class by saliency, or with the
        choices made for the previous sample when they still apply."""
        r = self._result
        if r is None or r.get("x") is None:
            self._say_error("Evaluate the network first (F7): the samples to explain come from the evaluation.")
            return
        x = np.asarray(r["x"])
        if not 0 <= int(index) < len(x):
            self._say_error(f"There is no sample {int(index)} in this evaluation: it holds {len(x)} samples.")
            return
        task = str(r.get("task", CLASSIFICATION))
        if task == RECONSTRUCTION:
            self._say_error("An autoencoder's output is a whole picture, not a class or a number, so there is no "
                            "single score to explain: explain a classifier or a regression instead.")
            return
        self._index = int(index)
        self.sample_box.show()
        images = images_of(r)
        self._image = np.asarray(images[self._index], dtype=np.float64) if images is not None else None
        if images is not None:
            self._range = image_range(images)
        self._fill_header()
        self._fill_choices()
        self._show_mode()
        self._set_probabilities(None)
        self._request_sample()

    def show_features(self) -> None:
        """Permutation importance of the features on the validation split (tables only)."""
        r = self._result
        self.features_box.show()
        if r is None:
            self._say_features_error("Evaluate the network first (F7).")
            return
        if not is_table(r):
            self._say_features_error("Feature importance is for tables of features; for images and sequences, "
                                     "explain single samples instead.")
            return
        if self._project is None or not self._weights:
            self._say_features_error(NO_WEIGHTS)
            return
        self.importance_error = None
        self.features_status.setText(f"<span style='color:{self._muted}'>Shuffling each feature of the validation "
                                     f"split {IMPORTANCE_REPEATS} times…</span>")
        self.features_button.setEnabled(False)
        self.runner.submit({"kind": "features", "project": self._project, "weights": self._weights,
                            "base_dir": self._base_dir, "tag": self._context})

    def busy(self) -> bool:
        return self.runner.busy()

    def classes(self) -> list[str]:
        r = self._result or {}
        return [str(c) for c in (r.get("classes") or [])]

    def conv_layers(self) -> list[str]:
        """The network's convolution layers (node ids) in the order it runs them: Grad-CAM's choices."""
        if not self._project:
            return []
        from engine.project import Project

        graph = Project.from_dict(self._project).graph
        return [nid for nid in graph.topological_order() if CONV_TYPE.match(graph.nodes[nid].type)]

    def layer_choices(self) -> list[str]:
        return [self.layer_combo.itemData(i) for i in range(self.layer_combo.count())]

    def method_offered(self, method: str) -> bool:
        i = self.method_combo.findData(method)
        return i >= 0 and self.method_combo.model().item(i).isEnabled()

    def bar_labels(self) -> list[str]:
        """The per-feature chart's labels, top to bottom (or left to right by position)."""
        return list(self._bar_labels)

    def importance_chart(self) -> list[tuple[str, float, float]]:
        """(feature, importance, std) as drawn, top bar first: read back from the bar and error-bar items."""
        if self.importance_bars is None:
            return []
        o = self.importance_bars.opts
        y = np.asarray(o["y"], dtype=np.float64)
        x0 = np.asarray(o["x0"], dtype=np.float64)
        width = np.asarray(o["width"], dtype=np.float64)
        values = np.where(x0 < 0, x0, width)  # a bar left of zero starts at its value
        std = np.asarray(self._importance_errors.opts["right"], dtype=np.float64)
        order = np.argsort(-y)
        labels = {round(float(v)): t for v, t in self._importance_ticks}
        return [(labels[round(float(y[k]))], float(values[k]), float(std[k])) for k in order]

    # ---- header and choices --------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._index = None
        self._image = None
        self.explanation = None
        self.error = None
        self.importance_rows = None
        self.importance_error = None
        self.title.setText("Explain a prediction")
        self.subtitle.setText(f"<span style='color:{self._muted}'>Right-click a sample in the evaluation (or "
                              f"select it and press <i>Explain this prediction</i>) to see which parts of it made "
                              f"the network choose its class.</span>")
        self.sample_box.hide()
        self.features_box.hide()
        self.features_button.setEnabled(True)
        self.features_button.setText("Compute feature importance")
        self.features_button.show()
        self.features_status.clear()
        self.importance_reading.clear()
        self.importance_host.hide()

    def _task(self) -> str:
        return str((self._result or {}).get("task", CLASSIFICATION))

    def _class_name(self, k: int) -> str:
        classes = self.classes()
        return classes[k] if 0 <= k < len(classes) else str(k)

    def _truth(self) -> tuple[int | None, int | None, float | None]:
        """(true class, predicted class, confidence) of the sample from the evaluation (classes only)."""
        r, i = self._result, self._index
        if r is None or i is None or self._task() not in (CLASSIFICATION, BINARY):
            return None, None, None
        n = len(np.asarray(r["x"]))
        yt = int(_as_int_labels(r["y_true"], n)[i])
        yp = int(_as_int_labels(r["y_pred"], n)[i])
        conf = r.get("confidence")
        return yt, yp, float(np.asarray(conf).reshape(-1)[i]) if conf is not None else None

    def _fill_header(self) -> None:
        r, i = self._result, self._index
        split = {"val": "validation", "test": "test", "train": "training"}.get(str(r.get("split")), r.get("split"))
        task = self._task()
        muted = self._muted
        where = f"<span style='color:{muted}'>sample {i} of the {html.escape(str(split))} split</span>"
        if task in (CLASSIFICATION, BINARY):
            yt, yp, conf = self._truth()
            right = yt == yp
            verdict = (f"<b style='color:{OK_COLOR}'>right</b>" if right else
                       f"<b style='color:{ERROR_COLOR}'>wrong</b>")
            conf_text = f" ({conf:.0%} sure)" if conf is not None else ""
            self.subtitle.setText(f"true class <b>{html.escape(self._class_name(yt))}</b> · predicted "
                                  f"<b>{html.escape(self._class_name(yp))}</b>{conf_text} · {verdict} · {where}")
            self.sample_picture.set_caption(f"true {self._class_name(yt)}, predicted {self._class_name(yp)}")
        else:
            n = len(np.asarray(r["x"]))
            yt = np.asarray(r["y_true"], dtype=np.float64).reshape(n, -1)[i]
            yp = np.asarray(r["y_pred"], dtype=np.float64).reshape(n, -1)[i]
            fmt = ", ".join
            self.subtitle.setText(f"true value <b>{fmt(f'{v:.4g}' for v in yt)}</b> · predicted "
                                  f"<b>{fmt(f'{v:.4g}' for v in yp)}</b> · {where}")
            self.sample_picture.set_caption(f"true {fmt(f'{v:.3g}' for v in yt)}")
        if self._image is not None:
            self.sample_picture.set_image(to_qimage(self._image, *self._range))

    def _update_title(self) -> None:
        """"Why 7?" for the predicted class, "Why not 2?" for another one chosen; "Why 1.97?" for a number."""
        r, i = self._result, self._index
        if r is None or i is None:
            return
        if self._task() in (CLASSIFICATION, BINARY):
            _, yp, _ = self._truth()
            target = self._target()
            if target is None or target == yp:
                self.title.setText(f"Why “{self._class_name(yp)}”?")
            else:
                self.title.setText(f"Why not “{self._class_name(target)}”?")
            return
        n = len(np.asarray(r["x"]))
        yp = np.asarray(r["y_pred"], dtype=np.float64).reshape(n, -1)[i]
        target = self._target()
        shown = [yp[target]] if target is not None and 0 <= target < len(yp) else yp
        self.title.setText("Why " + ", ".join(f"{v:.3g}" for v in shown) + "?")

    def _fill_choices(self) -> None:
        """Class (predicted first, then the true one, then the rest), method (Grad-CAM only with a convolution
        layer) and layer; the method and layer chosen before are kept when they still apply."""
        task = self._task()
        r = self._result
        for combo in (self.class_combo, self.method_combo, self.layer_combo):
            combo.blockSignals(True)
        try:
            self.class_combo.clear()
            if task in (CLASSIFICATION, BINARY):
                yt, yp, _ = self._truth()
                if yt == yp:
                    self.class_combo.addItem(f"{self._class_name(yp)} (predicted and true)", yp)
                else:
                    self.class_combo.addItem(f"{self._class_name(yp)} (predicted)", yp)
                    self.class_combo.addItem(f"{self._class_name(yt)} (true: why not this one?)", yt)
                count = max(len(self.classes()), 2 if task == BINARY else 0)
                rest = [k for k in range(count) if k not in (yt, yp)]
                if rest:
                    self.class_combo.insertSeparator(self.class_combo.count())
                for k in rest:
                    self.class_combo.addItem(self._class_name(k), k)
                self.class_combo.setCurrentIndex(0)
                self.class_label.setText("Class")
                visible = True
            else:
                n = len(np.asarray(r["x"]))
                outputs = np.asarray(r["y_pred"]).reshape(n, -1).shape[1]
                for k in range(outputs):
                    self.class_combo.addItem(f"output {k}", k)
                self.class_label.setText("Output")
                visible = outputs > 1
            self.class_combo.setVisible(visible)
            self.class_label.setVisible(visible)

            convs = self.conv_layers()
            previous = self.layer_combo.currentData()
            self.layer_combo.clear()
            for nid in convs:
                self.layer_combo.addItem(nid, nid)
            if convs:
                self.layer_combo.setCurrentIndex(convs.index(previous) if previous in convs else len(convs) - 1)
            i = self.method_combo.findData(GRADCAM)
            item = self.method_combo.model().item(i)
            item.setEnabled(bool(convs))
            item.setText(METHOD_NAMES[GRADCAM] if convs else f"{METHOD_NAMES[GRADCAM]} (needs a convolution layer)")
            item.setToolTip("" if convs else "Grad-CAM reads the feature maps of a Conv1d or Conv2d layer, and this "
                                             "network has none: use saliency or integrated gradients.")
            if self.method_combo.currentData() == GRADCAM and not convs:
                self.method_combo.setCurrentIndex(self.method_combo.findData(SALIENCY))
        finally:
            for combo in (self.class_combo, self.method_combo, self.layer_combo):
                combo.blockSignals(False)
        self._show_layer_choice()

    def _show_layer_choice(self) -> None:
        gradcam = self.method_combo.currentData() == GRADCAM
        self.layer_combo.setVisible(gradcam)
        self.layer_label.setVisible(gradcam)

    def _show_mode(self) -> None:
        image = self._image is not None
        self.sample_title.setVisible(image)
        self.sample_picture.setVisible(image)
        self.images_box.setVisible(image)
        self.bars_host.setVisible(not image)
        self.tokens_label.hide()
        classes = self._task() in (CLASSIFICATION, BINARY)
        self.prob_title.setVisible(classes)
        self.prob_bars.setVisible(classes)
        self.features_box.setVisible(is_table(self._result) or self.importance_rows is not None)
        self._write_reading()

    # ---- requests ------------------------------------------------------------------------------------------------
    def _on_method(self, _i: int) -> None:
        self._show_layer_choice()
        self._on_choice()

    def _on_choice(self, *_: Any) -> None:
        if self._index is not None:
            self._request_sample()

    def _target(self) -> int | None:
        if self._task() in (CLASSIFICATION, BINARY):
            return self.class_combo.currentData()
        return self.class_combo.currentData() if self.class_combo.count() > 1 else None

    def _request_sample(self) -> None:
        self._update_title()
        self._write_reading()
        if self._project is None or not self._weights:
            self._say_error(NO_WEIGHTS)
            self.computed.emit({"kind": "sample", "error": NO_WEIGHTS})
            return
        r = self._result
        x = np.array(np.asarray(r["x"])[self._index])
        method = self.method_combo.currentData()
        shape = r.get("image_shape")
        flat_image = self._image is not None and x.ndim == 1 and shape
        request = {"kind": "sample", "project": self._project, "weights": self._weights,
                   "base_dir": self._base_dir, "x": x, "method": method, "target": self._target(),
                   "layer": self.layer_combo.currentData() if method == GRADCAM else None,
                   "image_shape": tuple(int(s) for s in shape) if flat_image else None,
                   "names": self._image is None, "tag": (self._context, self._index)}
        self.error = None
        what = METHOD_NAMES[method].lower() if method != GRADCAM else "Grad-CAM map"
        target = self._target()
        of = f" of {html.escape(self._class_name(target))}" if self._task() in (CLASSIFICATION, BINARY) else ""
        self.status.setText(f"<span style='color:{self._muted}'>Computing the {what}{of}…</span>")
        self.runner.submit(request)

    def _on_done(self, result: dict[str, Any]) -> None:
        if result.get("kind") == "features":
            if result.get("tag") == self._context:
                self._show_importance(result)
            return
        if result.get("tag") != (self._context, self._index):
            return
        if "error" in result:
            self._say_error(result["error"])
        else:
            self._show_explanation(result)
        self.computed.emit(result)

    def _say_error(self, text: str) -> None:
        self.error = text
        self.status.setText(f"<span style='color:{ERROR_COLOR}'><b>Cannot explain this sample.</b> "
                            f"{html.escape(text)}</span>")
        self.overlay_picture.set_image(None, "—")
        self.heat_picture.set_image(None, "—")
        if self._bar_plot is not None:
            self._bar_plot.clear()
            self.bars = None
            self._bar_labels = []
        self.tokens_label.hide()
        if self._index is None:
            self.sample_box.show()
            for w in (self.sample_title, self.sample_picture, self.images_box, self.bars_host, self.prob_title,
                      self.prob_bars):
                w.hide()

    def _say_features_error(self, text: str) -> None:
        self.importance_error = text
        self.features_button.setEnabled(True)
        self.features_button.setText("Try again")
        self.features_button.show()
        self.features_status.setText(f"<span style='color:{ERROR_COLOR}'><b>Cannot compute feature importance.</b> "
                                     f"{html.escape(text)}</span>")

    # ---- answers -------------------------------------------------------------------------------------------------
    def _show_explanation(self, result: dict[str, Any]) -> None:
        e = result["explanation"]
        self.explanation = e
        self._set_probabilities(e)
        method = e["method"]
        target = e.get("target")
        task = self._task()
        cls = self._class_name(target) if task in (CLASSIFICATION, BINARY) and target is not None else None
        bits = [METHOD_NAMES.get(method, method)]
        if cls is not None:
            bits.append(f"of class <b>{html.escape(cls)}</b>")
        if e.get("layer"):
            bits.append(f"at layer <b>{html.escape(e['layer'])}</b>")
        if e.get("delta") is not None:
            bits.append(f"(the shares add up to the score's change within {abs(float(e['delta'])):.2g})")
        self.status.setText(f"<span style='color:{self._muted}'>{' '.join(bits)}</span>")
        heat = np.asarray(e["heat"], dtype=np.float32)
        if self._image is not None:
            img = self._image
            if heat.shape != img.shape[-2:]:
                self._say_error(f"The heat map is {heat.shape} but the image is {img.shape[-2:]}: choose another "
                                f"layer or method.")
                return
            shown = np.clip((img - self._range[0]) / ((self._range[1] - self._range[0]) or 1.0), 0.0, 1.0)
            self.overlay_picture.set_image(_rgb_image(overlay(shown, heat)))
            self.heat_picture.set_image(_rgb_image(colormap(heat)))
        else:
            self._show_bars(e, result.get("feature_names"), result.get("vocabulary"), cls)
        self._write_reading()

    def _set_probabilities(self, e: dict[str, Any] | None) -> None:
        task = self._task()
        if task not in (CLASSIFICATION, BINARY):
            return  # the subtitle gives the true and the predicted value
        probs = None if e is None else e.get("probs")
        if probs is None:
            self.prob_bars.set_rows([], "computing…" if e is None else "no probabilities for this output")
            return
        probs = np.asarray(probs, dtype=np.float64).reshape(-1)
        self.prob_title.setText((f"Most likely classes (top {TOP_CLASSES})" if len(probs) > TOP_CLASSES
                                 else "Probabilities").upper())
        yt, _, _ = self._truth()
        predicted = e.get("predicted")
        order = [int(k) for k in np.argsort(-probs, kind="stable")[:TOP_CLASSES]]
        if yt is not None and 0 <= yt < len(probs) and yt not in order:
            order.append(yt)  # the true class too: why not that one?
        rows = []
        for k in order:
            tags = [t for t, hit in (("predicted", k == predicted), ("true", k == yt)) if hit]
            rows.append((self._class_name(k), float(probs[k]), " + ".join(tags)))
        self.prob_bars.set_rows(rows)

    def _show_bars(self, e: dict[str, Any], feature_names: list[str] | None, vocabulary: list[str] | None,
                   cls: str | None) -> None:
        import pyqtgraph as pg

        a = np.asarray(e["attributions"], dtype=np.float64)
        x = np.asarray(np.asarray(self._result["x"])[self._index])
        tokens = not np.issubdtype(x.dtype, np.floating)
        if self._bar_plot is None:
            self._bar_plot = _bar_plot(self.bars_host)
            self._bar_plot.setObjectName("attributionBars")
            self.bars_host.layout().addWidget(self._bar_plot)
        plot = self._bar_plot
        plot.clear()
        _style(plot, self.palette())
        if a.ndim == 1:
            values = a
            if tokens:
                words = [vocabulary[int(t)] if vocabulary and 0 <= int(t) < len(vocabulary) else f"#{int(t)}"
                         for t in x]
                labels = [f"{k}: {w}" for k, w in enumerate(words)]
            elif feature_names and len(feature_names) == len(x):
                labels = [f"{n} = {float(v):.3g}" for n, v in zip(feature_names, x)]
            else:
                labels = [f"feature {k} = {float(v):.3g}" for k, v in enumerate(x)]
        else:
            values = a.reshape(a.shape[0], -1).sum(axis=1)  # one bar per step, its values summed
            labels = [f"step {k}" for k in range(len(values))]
        n = len(values)
        self._bars_have_values = a.ndim == 1 and not tokens and n <= MAX_SIDEWAYS_BARS
        brushes = [pg.mkBrush(POSITIVE_COLOR if v >= 0 else NEGATIVE_COLOR) for v in values]
        fm = QFontMetrics(self.font())
        left, bottom = plot.getAxis("left"), plot.getAxis("bottom")
        if n <= MAX_SIDEWAYS_BARS:
            order = np.argsort(-np.abs(values), kind="stable")  # the largest on top
            ys = np.arange(n, dtype=np.float64)[::-1]
            vals = values[order]
            item = pg.BarGraphItem(x0=np.minimum(vals, 0.0), y=ys, width=np.abs(vals), height=0.62,
                                   brushes=[brushes[k] for k in order], pen=pg.mkPen(None))
            self._bar_labels = [labels[k] for k in order]
            left.setTicks([[(float(y), lab) for y, lab in zip(ys, self._bar_labels)]])
            left.setWidth(min(320, max(fm.horizontalAdvance(lab) for lab in self._bar_labels) + 14))
            bottom.setTicks(None)
            plot.showGrid(x=True, y=False, alpha=0.15)
            plot.setLabel("bottom", f"attribution to {cls}" if cls else "attribution")
            plot.setLabel("left", "")
            plot.setFixedHeight(max(170, n * (fm.height() + 8) + 70))
            plot.setYRange(-0.6, n - 0.4, padding=0)
            span = float(np.abs(vals).max()) if n else 0.0
            lo = min(0.0, float(vals.min()) if n else 0.0)
            hi = max(0.0, float(vals.max()) if n else 0.0)
            pad = (span or 1.0) * 0.06
            plot.setXRange(lo - pad, hi + pad, padding=0)
            item.setToolTip("to the right: for the class; to the left: against it")
        else:
            xs = np.arange(n, dtype=np.float64)
            item = pg.BarGraphItem(x=xs, height=values, width=0.8, brushes=brushes, pen=pg.mkPen(None))
            self._bar_labels = labels
            left.setTicks(None)
            left.setWidth(None)
            bottom.setTicks(None)
            plot.showGrid(x=False, y=True, alpha=0.15)
            plot.setLabel("bottom", "position" if tokens else "step")
            plot.setLabel("left", f"attribution to {cls}" if cls else "attribution")
            plot.setFixedHeight(260)
            plot.setXRange(-1, n, padding=0)
            plot.enableAutoRange(axis="y")
        plot.addItem(item)
        self.bars = item
        if tokens and vocabulary:
            self._show_tokens(x, values, vocabulary)
        else:
            self.tokens_label.hide()

    def _show_tokens(self, ids: np.ndarray, values: np.ndarray, vocabulary: list[str]) -> None:
        """The text itself, each word shaded by its attribution (warm: for the class, cold: against)."""
        top = float(np.abs(values).max()) or 1.0
        base = self.palette().color(QPalette.ColorRole.Base)
        parts = []
        for t, v in zip(ids, values):
            t = int(t)
            if t == 0:  # padding
                continue
            word = vocabulary[t] if 0 <= t < len(vocabulary) else f"#{t}"
            shade = blend(base, QColor(POSITIVE_COLOR if v >= 0 else NEGATIVE_COLOR), min(1.0, abs(v) / top) * 0.85)
            parts.append(f"<span style='background-color:{shade.name()}'>&nbsp;{html.escape(word)}&nbsp;</span>")
        self.tokens_label.setText(" ".join(parts) or f"<span style='color:{self._muted}'>(only padding)</span>")
        self.tokens_label.show()

    def _write_reading(self) -> None:
        method = self.method_combo.currentData() or SALIENCY
        text, formula = HOW_TO_READ[method]
        muted = self._muted
        classes = self._task() in (CLASSIFICATION, BINARY)
        if not classes:  # a number, not a class, is explained
            text = (text.replace("the score of the chosen class", "the network's output")
                    .replace("the chosen class's score", "the output"))
        parts = [f"<p style='line-height:130%'>{html.escape(text)}</p>"]
        if self._image is None and self._index is not None:
            cls = self._class_name(self._target()) if classes and self._target() is not None else None
            hint = BARS_HINT[method].format(score=f"the score of {cls}" if cls else "the output",
                                            what=cls if cls else "a larger output")
            if self._bars_have_values:
                hint += " The values beside the names are as the network sees them (standardised for tables)."
            parts.append(f"<p style='line-height:130%'>{html.escape(hint)}</p>")
        elif self._image is not None:
            parts.append(f"<p style='line-height:130%'>Left: the heat map laid over the sample; right: the heat map "
                         f"alone. Blue where the pixel did not matter, {IMAGE_HINT[method]}.</p>")
        parts.append(f"<table cellpadding='7' cellspacing='0' style='background-color:{self._box}'><tr><td "
                     f"style='font-family:\"DejaVu Serif\", \"Cambria Math\", serif; font-size:11pt'>"
                     f"{html.escape(formula)}</td></tr></table>"
                     f"<p style='color:{muted}'>"
                     + ("y_c is the network's score for class c (before softmax)" if classes else
                        "y_c is the network's output (the predicted number)") + "; x the sample.</p>")
        self.reading.setText("".join(parts))

    def _show_importance(self, result: dict[str, Any]) -> None:
        import pyqtgraph as pg

        self.features_button.setEnabled(True)
        if "error" in result:
            self._say_features_error(result["error"])
            self.computed.emit(result)
            return
        self.features_button.hide()  # computed for this evaluation (the same seed would give the same bars)
        rows = result["rows"]
        self.importance_rows = rows
        self.importance_error = None
        metric = rows[0]["metric"] if rows else "accuracy"
        metric_words = {"accuracy": "accuracy", "r2": "R²", "loss": "negative loss"}.get(metric, metric)
        baseline = rows[0]["baseline"] if rows else float("nan")
        base_text = f"{baseline:.1%}" if metric == "accuracy" else f"{baseline:.3g}"
        self.features_status.setText(f"<span style='color:{self._muted}'>{len(rows)} features; validation "
                                     f"{html.escape(metric_words)} with none shuffled: {base_text}</span>")
        if self._importance_plot is None:
            self._importance_plot = _bar_plot(self.importance_host)
            self._importance_plot.setObjectName("importanceBars")
            self.importance_host.layout().addWidget(self._importance_plot)
        plot = self._importance_plot
        plot.clear()
        _style(plot, self.palette())
        n = len(rows)
        ys = np.arange(n, dtype=np.float64)[::-1]  # the most important on top
        vals = np.array([r["importance"] for r in rows], dtype=np.float64)
        std = np.array([r["std"] for r in rows], dtype=np.float64)
        bars = pg.BarGraphItem(x0=np.minimum(vals, 0.0), y=ys, width=np.abs(vals), height=0.62,
                               brush=pg.mkBrush(INFO_COLOR), pen=pg.mkPen(None))
        errors = pg.ErrorBarItem(x=vals, y=ys, left=std, right=std, beam=0.18,
                                 pen=pg.mkPen(self.palette().color(QPalette.ColorRole.Text), width=1.2))
        plot.addItem(bars)
        plot.addItem(errors)
        self.importance_bars, self._importance_errors = bars, errors
        self._importance_ticks = [(float(y), str(r["name"])) for y, r in zip(ys, rows)]
        fm = QFontMetrics(self.font())
        left = plot.getAxis("left")
        left.setTicks([self._importance_ticks])
        left.setWidth(min(320, max((fm.horizontalAdvance(t) for _, t in self._importance_ticks), default=40) + 14))
        plot.setLabel("bottom", f"drop in validation {metric_words} when the feature is shuffled")
        plot.setFixedHeight(max(170, n * (fm.height() + 8) + 70))
        plot.setYRange(-0.6, n - 0.4, padding=0)
        lo = min(0.0, float((vals - std).min()) if n else 0.0)
        hi = max(0.0, float((vals + std).max()) if n else 0.0)
        pad = ((hi - lo) or 1.0) * 0.06
        plot.setXRange(lo - pad, hi + pad, padding=0)
        self.importance_host.show()
        self.importance_reading.setText(IMPORTANCE_HINT.format(metric=metric_words, repeats=IMPORTANCE_REPEATS))
        self.computed.emit(result)

    # ---- colours -------------------------------------------------------------------------------------------------
    def _apply_colors(self) -> None:
        pal = self.palette()
        self._muted = _muted(pal).name()
        self._box = blend(pal.color(QPalette.ColorRole.Base), QColor(INFO_COLOR), 0.12).name()
        for label in self.findChildren(QLabel):
            if label.property("muted") or label.property("section"):
                label.setStyleSheet(f"color: {self._muted};")
        self.importance_reading.setStyleSheet(f"color: {self._muted};")
        for plot in (self._bar_plot, self._importance_plot):
            if plot is not None:
                _style(plot, pal)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "reading"):
            self._apply_colors()
            if self._index is not None:
                self._write_reading()


# ---- the window's dialog ------------------------------------------------------------------------------------------
class ExplainDialog(QDialog):
    """The explain panel in its own non-modal window: the main window and a training run carry on beside it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ExplainDialog")
        self.setWindowTitle("Explain a prediction")
        self.setModal(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.panel = ExplainPanel(self)
        layout.addWidget(self.panel)
        self.resize(940, 780)


def explain_dialog(window: QWidget) -> ExplainDialog:
    """The window's explain dialog (made on first use)."""
    dialog = getattr(window, "explain_dialog", None)
    if dialog is None:
        dialog = ExplainDialog(window)
        window.explain_dialog = dialog
    return dialog


def _context_of(window: Any, view: Any) -> tuple[dict | None, str | None, str | None]:
    doc = window.document
    if doc is None:
        return None, None, None
    weights = window.training.weights_path()
    return (doc.project.to_dict(), str(weights) if weights else None,
            str(doc.path.parent) if doc.path is not None else None)


def open_explain(window: Any, view: Any, index: int | None = None) -> ExplainDialog:
    """Show the explain dialog for sample `index` of the evaluation view's result, or its feature importance
    (index None)."""
    dialog = explain_dialog(window)
    project, weights, base_dir = _context_of(window, view)
    dialog.panel.set_context(view.result, project, weights, base_dir)
    if index is None:
        dialog.panel.show_features()
    else:
        dialog.panel.show_sample(int(index))
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def hook_explain(window: Any, view: Any) -> None:
    """Connect an evaluation view's explain requests to the window's explain dialog."""
    view.explain_requested.connect(lambda i: open_explain(window, view, int(i)))
    view.features_requested.connect(lambda: open_explain(window, view, None))


__all__ = ["ExplainDialog", "ExplainPanel", "ExplainRunner", "hook_explain", "is_table", "open_explain", "run_job"]
