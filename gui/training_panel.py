"""The training setup panel: the data (source, its settings, split, augmentation, a preview and whether it fits the
network), the loss, optimizer, schedule and training settings. Every edit is checked with the engine's specs first
and becomes one undoable Document.set_section; a refused value is shown in red under its editor and changes nothing.

Editors mirror the project: an undo or redo (Document.section_changed) rewrites them with their signals blocked,
so writing back never echoes a second edit. The preview loads the data on a plain thread and hands the bundle (NumPy
arrays) back through a queued signal, so the panel never waits on a file or on scikit-learn. torch is never
imported here: whether a GPU exists is asked only once torch has been loaded by someone else.
"""
from __future__ import annotations

import copy
import html
import json
import math
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor, QFont, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from engine.data import (
    AUGMENT_PARAMS,
    BINARY,
    CLASSIFICATION,
    FILE,
    GENERATED,
    RECONSTRUCTION,
    REGRESSION,
    SPLIT_PARAMS,
    fit_problems,
    get_source,
    load_data,
    normalize_settings,
    sources,
)
from engine.data.base import COLUMN, PATH, TEXT
from engine.errors import LayerLoomError
from engine.layers import fmt
from engine.losses import all_losses, check_loss_fit, get_loss
from engine.optimizers import all_optimizers, all_schedules, get_optimizer, get_schedule
from engine.params import BOOL, Param
from engine.runner import EARLY_STOPPING_PARAMS, TRAINING_PARAMS, training_config
from engine.search import TRAINING_TARGETS

from .colors import ERROR_COLOR, OK_COLOR, WARNING_COLOR
from .evaluation_views import ImageGallery, SampleTable, image_range, section_label
from .inspector import (
    SEARCH_ACTION_TEXT,
    SEARCHABLE_KINDS,
    add_search_action,
    format_value,
    narrow_combo,
    param_editor,
    param_tooltip,
    parse_value,
    scrolling_page,
    write_widget,
)
from .palette import blend

DEFAULT_OPTIMIZER = {"type": "Adam", "params": {}}  # what the runner uses when the project names none
PREVIEW_SAMPLES = 24
PREVIEW_ROWS = 6
GROUPS = ((None, "Bundled sets"), (GENERATED, "Generated sets"), (FILE, "Files"))
SOURCE_NAMES = {
    "digits": "Digits: handwritten 0–9", "iris": "Iris flowers", "wine": "Wine", "breast_cancer": "Breast cancer",
    "diabetes": "Diabetes progression", "spirals": "Spirals", "moons": "Moons", "circles": "Circles", "xor": "XOR",
    "line": "A noisy line", "shapes": "Shapes (images)", "signals": "Signals (sequences)",
    "sentiment": "Sentiment (short reviews)", "csv": "CSV table", "npz": "NumPy arrays (.npz)",
    "idx": "IDX files (MNIST format)", "image_folder": "Image folder", "text": "Text file (label, text)",
}
FILE_FILTERS = {"csv": "CSV files (*.csv *.tsv *.txt);;All files (*)",
                "npz": "NumPy archives (*.npz);;All files (*)",
                "idx": "IDX files (*-ubyte *.gz *idx*);;All files (*)",
                "text": "Text files (*.txt *.tsv);;All files (*)"}
DEVICE_LABELS = {"auto": "Automatic (a GPU when there is one)", "cpu": "CPU", "cuda": "GPU (CUDA)"}
LABELS = {  # friendlier names for the panel's own settings; catalogue parameters keep PyTorch's names
    ("data", "split", "val"): "Validation share", ("data", "split", "test"): "Test share",
    ("data", "augment", "flip"): "Mirror left–right", ("data", "augment", "shift"): "Shift (pixels)",
    ("data", "augment", "rotate"): "Rotate (degrees)", ("training", "batch_size"): "Batch size",
    ("training", "epochs"): "Epochs", ("training", "device"): "Device", ("training", "seed"): "Seed",
    ("training", "l1"): "L1 penalty", ("optimizer", "params", "weight_decay"): "L2 (weight decay)",
    ("training", "grad_clip"): "Gradient clipping", ("training", "early_stopping"): "Early stopping",
    ("training", "early_stopping", "patience"): "Patience (epochs)",
    ("training", "early_stopping", "monitor"): "Watch", ("optimizer", "params", "lr"): "Learning rate (lr)",
}
_INT_RE = re.compile(r"[+-]?\d+")


def _param(params: tuple[Param, ...], name: str) -> Param:
    return next(p for p in params if p.name == name)


def path_for_project(path: str | os.PathLike, project_dir: str | os.PathLike | None) -> str:
    """How a chosen file is stored: relative to the project's folder when it lies inside it (the two can then
    move together), else absolute."""
    p = Path(path).resolve()
    if project_dir is None:
        return str(p)
    base = Path(project_dir).resolve()
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return str(p)


def _get(d: Any, path: tuple[str, ...], default: Any) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return default
        d = d[key]
    return d


def _with(d: dict[str, Any] | None, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(d) if d else {}
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return out


# ---- one editor ---------------------------------------------------------------------------------------------------
class _Field:
    """One setting's editor and its red refusal line. `section` and `path` say where the value lives in the project
    (("params", "lr") of "optimizer"); reads and writes the widget, never the document."""

    def __init__(self, section: str, path: tuple[str, ...], param: Param, widget: QWidget, error: QLabel,
                 owner: str, label: str):
        self.section, self.path, self.param = section, path, param
        self.widget, self.error, self.owner, self.label = widget, error, owner, label
        self.row: QWidget | None = None
        self.caption: QLabel | None = None
        self.toggle = False  # early stopping on/off: the value is whether a sub-dict is there
        self.search_action: QAction | None = None  # "Add to the search" in its right-click menu, where it applies

    @property
    def key(self) -> tuple[str, ...]:
        return (self.section, *self.path)

    def write(self, value: Any) -> None:
        write_widget(self.widget, value, self.text_of(value))

    def text_of(self, value: Any) -> str:
        if value is None:
            return ""
        if self.param.kind == TEXT:
            return str(value).replace("\t", "\\t")
        if self.param.kind in (PATH, COLUMN):
            return str(value)
        return format_value(self.param, value)

    def read(self) -> Any:
        """The value in the editor; ParamError when the text cannot be one."""
        w = self.widget
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        text = w.text()
        kind = self.param.kind
        if kind == TEXT:
            return text.replace("\\t", "\t")
        if kind in (PATH, COLUMN):
            text = text.strip()
            if not text:
                return None if self.param.optional else ""
            return int(text) if kind == COLUMN and _INT_RE.fullmatch(text) else text
        return parse_value(self.owner, self.param, text)

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.widget.setStyleSheet(f"border: 1px solid {ERROR_COLOR}; border-radius: 3px;"
                                  if message and isinstance(self.widget, QLineEdit) else "")


class _Loader(QObject):
    """Carries a loaded bundle from the loading thread to the GUI thread (a queued signal)."""

    done = Signal(int, object, str)


def _load_in_thread(loader: _Loader, seq: int, settings: dict, base_dir: str | None) -> None:
    try:
        bundle, error = load_data(settings, base_dir=base_dir), ""
    except LayerLoomError as e:
        bundle, error = None, str(e)
    except Exception as e:  # a loader bug or an odd file: said in the panel, never a dialog
        bundle, error = None, f"the data could not be loaded ({type(e).__name__}: {e})"
    try:
        loader.done.emit(seq, bundle, error)
    except RuntimeError:  # the panel was closed while the data loaded
        pass


# ---- the panel ----------------------------------------------------------------------------------------------------
class TrainingSetupPanel(QWidget):
    """Edits the training settings of a Document. `message(str)` carries status-bar text (what changed, or why a
    value was refused); `preview_changed(str)` tells the preview's state: "empty", "loading", "ready" or "error"."""

    message = Signal(str)
    preview_changed = Signal(str)
    search_requested = Signal(str)  # a search target ("optimizer.lr", "training.batch_size") to add to the search

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("TrainingSetupPanel")
        self._doc = None
        self._locked = False
        self._lock_reason = ""
        self._fields: dict[tuple[str, ...], _Field] = {}
        self._search_actions: dict[tuple[str, ...], QAction] = {}  # the optimizer and schedule choices'
        self._built: dict[str, str | None] = {"data": None, "loss": None, "optimizer": None, "schedule": None}
        self._bundle = None
        self._bundle_key: str | None = None
        self._preview_state = "empty"
        self._preview_error = ""
        self._seq = 0
        self._loading = False
        self._pending = False
        self._cuda: bool | None = None
        self._loader = _Loader(self)
        self._loader.done.connect(self._on_preview_loaded, Qt.ConnectionType.QueuedConnection)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(150)
        self._preview_timer.timeout.connect(self._start_preview)
        self._apply_palette_colors()
        self._build_ui()
        self._apply_colors()
        self._refresh_all()

    # ---- public ---------------------------------------------------------------------------------------------------
    @property
    def document(self):
        return self._doc

    @property
    def locked(self) -> bool:
        return self._locked

    @property
    def preview_state(self) -> str:
        return self._preview_state

    def preview_settled(self) -> bool:
        """No preview waiting to start (a change starts one 150 ms later) or loading."""
        return not self._preview_timer.isActive() and not self._loading

    @property
    def bundle(self):
        """The data the preview shows (an engine.data DataBundle), or None."""
        return self._bundle

    def editor(self, section: str, *path: str) -> QWidget:
        """The editor of a setting, e.g. editor("optimizer", "params", "lr") or editor("training", "epochs")."""
        return self._fields[(section, *path)].widget

    def search_action(self, section: str, *path: str) -> QAction | None:
        """The "Add to the search" entry of a setting's right-click menu: ("optimizer", "params", "lr"),
        ("training", "batch_size"), ("optimizer", "type") for the optimizer itself ...; None where a search cannot
        vary the setting."""
        key = (section, *path)
        if key in self._search_actions:
            return self._search_actions[key]
        field = self._fields.get(key)
        return field.search_action if field is not None else None

    def _offer_search(self, widget: QWidget, target: str, what: str) -> QAction:
        action = QAction(SEARCH_ACTION_TEXT, widget)
        action.setToolTip(f"try several values of {what} in a hyper-parameter search (Run ▸ Search)")
        action.triggered.connect(lambda *_: self.search_requested.emit(target))
        add_search_action(widget, action)
        return action

    def error_text(self, section: str, *path: str) -> str:
        """The refusal shown under a setting's editor ("" when none)."""
        e = self._fields[(section, *path)].error
        return "" if e.isHidden() else e.text()

    def preview_text(self) -> str:
        """What the preview says in words: its status line, the data's description and the fit verdict."""
        parts = [w.text() for w in (self.preview_status, self.preview_stats, self.fit_label) if not w.isHidden()]
        return "\n".join(re.sub(r"<[^>]+>", " ", html.unescape(p)) for p in parts if p and not p.isspace())

    def fit_messages(self) -> list[str]:
        """The problems between the loaded data and the network or loss (each with its fix); [] when it fits."""
        return list(self._fit_problems)

    def set_document(self, doc) -> None:
        """Follow another document (or none)."""
        if doc is self._doc:
            return
        if self._doc is not None:
            for signal, slot in ((self._doc.section_changed, self._on_section_changed),
                                 (self._doc.analyzed, self._on_analyzed),
                                 (self._doc.path_changed, self._on_path_changed)):
                try:
                    signal.disconnect(slot)
                except (RuntimeError, TypeError):
                    pass
        self._doc = doc
        self._bundle, self._bundle_key = None, None
        self._seq += 1  # a load still running for the old document is dropped when it arrives
        if doc is not None:
            doc.section_changed.connect(self._on_section_changed)
            doc.analyzed.connect(self._on_analyzed)
            doc.path_changed.connect(self._on_path_changed)
        self._built = {"data": None, "loss": None, "optimizer": None, "schedule": None}
        self._refresh_all()

    def set_locked(self, locked: bool, reason: str = "") -> None:
        """Disable editing (during a run) and say why; the preview stays readable."""
        self._locked = bool(locked)
        self._lock_reason = reason
        self.lock_banner.setText(f"<b>Settings are locked.</b> {html.escape(reason or 'A run is using them.')}")
        self.lock_banner.setVisible(self._locked)
        self._update_enabled()

    def refresh_devices(self) -> None:
        """Offer the GPU only where torch (once loaded by someone else) finds one."""
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "cuda"):
            try:
                self._cuda = bool(torch.cuda.is_available())
            except Exception:  # a broken driver is "no GPU" here; training says more
                self._cuda = False
        combo = self.editor("training", "device")
        model = combo.model()
        i = combo.findData("cuda")
        if i >= 0 and isinstance(model, QStandardItemModel):
            item = model.item(i)
            current = combo.currentData() == "cuda"
            item.setEnabled(self._cuda is not False or current)
            item.setText(DEVICE_LABELS["cuda"] + (" — none found" if self._cuda is False else ""))
        if self._cuda is None:
            note = "Whether this computer has a GPU is checked once PyTorch has loaded."
        elif self._cuda:
            note = ""
        else:
            note = "No CUDA GPU was found: training runs on the CPU."
        self.device_note.setText(note)
        self.device_note.setVisible(bool(note))

    # ---- building -------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        page, body = scrolling_page(self, "trainingSetupPage", (12, 10, 12, 14))
        self._page = page

        self.lock_banner = QLabel(page)
        self.lock_banner.setObjectName("lockBanner")
        self.lock_banner.setWordWrap(True)
        self.lock_banner.setTextFormat(Qt.TextFormat.RichText)
        self.lock_banner.hide()
        body.addWidget(self.lock_banner)
        self.no_doc = QLabel("Open or create a project to set up its training.", page)
        self.no_doc.setWordWrap(True)
        self.no_doc.setProperty("muted", True)
        body.addWidget(self.no_doc)

        # -- data
        body.addWidget(section_label("Data", page))
        self.data_box = QWidget(page)
        data = self._form(self.data_box)
        self.source_combo = narrow_combo(QComboBox(self.data_box))
        self.source_combo.setObjectName("sourceCombo")
        self.source_combo.setModel(self._source_model())
        self.source_combo.setPlaceholderText("Choose a data source…")
        self.source_combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.source_combo.installEventFilter(self)
        self.source_combo.currentIndexChanged.connect(self._on_source_chosen)
        data.addRow(self._caption("Source", self.data_box, "where the samples come from"), self.source_combo)
        self.source_about = self._about_label(self.data_box)
        data.addRow(self.source_about)
        self.source_params = self._host(self.data_box)
        data.addRow(self.source_params)
        for p in SPLIT_PARAMS[:2]:
            self._add_field(data, "data", ("split", p.name), p, "data split")
        self._add_field(data, "training", ("batch_size",), _param(TRAINING_PARAMS, "batch_size"), "training")
        self.augment_title = QLabel("Augmentation (images only, training split)", self.data_box)
        self.augment_title.setProperty("muted", True)
        self.augment_title.setWordWrap(True)
        data.addRow(self.augment_title)
        for p in AUGMENT_PARAMS:
            self._add_field(data, "data", ("augment", p.name), p, "data augmentation")
        body.addWidget(self.data_box)

        # -- preview
        body.addWidget(section_label("Preview", page))
        self.preview_box = QWidget(page)
        pv = QVBoxLayout(self.preview_box)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.setSpacing(6)
        self.preview_status = QLabel(self.preview_box)
        self.preview_status.setObjectName("previewStatus")
        self.preview_status.setWordWrap(True)
        self.preview_status.setTextFormat(Qt.TextFormat.RichText)
        self.preview_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pv.addWidget(self.preview_status)
        self.preview_stats = QLabel(self.preview_box)
        self.preview_stats.setTextFormat(Qt.TextFormat.RichText)
        self.preview_stats.setWordWrap(True)
        self.preview_stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pv.addWidget(self.preview_stats)
        self.preview_gallery = ImageGallery(self.preview_box, cell=40)
        self.preview_gallery.setObjectName("previewGallery")
        pv.addWidget(self.preview_gallery)
        self.preview_table = SampleTable(self.preview_box, max_rows=PREVIEW_ROWS)
        self.preview_table.setObjectName("previewTable")
        pv.addWidget(self.preview_table)
        self.fit_label = QLabel(self.preview_box)
        self.fit_label.setObjectName("fitLabel")
        self.fit_label.setWordWrap(True)
        self.fit_label.setTextFormat(Qt.TextFormat.RichText)
        self.fit_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pv.addWidget(self.fit_label)
        body.addWidget(self.preview_box)
        self._fit_problems: list[str] = []

        # -- loss
        body.addWidget(section_label("Loss", page))
        self.loss_box = QWidget(page)
        loss = self._form(self.loss_box)
        self.loss_combo = self._choice_combo(self.loss_box, [(s.type, s.type, s.summary) for s in all_losses()],
                                             "Choose a loss…")
        self.loss_combo.setObjectName("lossCombo")
        self.loss_combo.currentIndexChanged.connect(self._on_loss_chosen)
        loss.addRow(self._caption("Loss", self.loss_box, "what training makes smaller"), self.loss_combo)
        self.loss_params = self._host(self.loss_box)
        loss.addRow(self.loss_params)
        self.loss_about = self._about_label(self.loss_box)
        loss.addRow(self.loss_about)
        self.loss_advice = QLabel(self.loss_box)
        self.loss_advice.setObjectName("lossAdvice")
        self.loss_advice.setWordWrap(True)
        self.loss_advice.setTextFormat(Qt.TextFormat.RichText)
        self.loss_advice.hide()
        loss.addRow(self.loss_advice)
        body.addWidget(self.loss_box)

        # -- optimizer and schedule
        body.addWidget(section_label("Optimizer", page))
        self.optimizer_box = QWidget(page)
        opt = self._form(self.optimizer_box)
        self.optimizer_combo = self._choice_combo(self.optimizer_box,
                                                  [(s.type, s.type, s.summary) for s in all_optimizers()], "")
        self.optimizer_combo.setObjectName("optimizerCombo")
        self.optimizer_combo.currentIndexChanged.connect(self._on_optimizer_chosen)
        opt.addRow(self._caption("Optimizer", self.optimizer_box, "how each step changes the weights"),
                   self.optimizer_combo)
        self._search_actions[("optimizer", "type")] = self._offer_search(self.optimizer_combo, "optimizer.type",
                                                                         "the optimizer")
        self.optimizer_about = self._about_label(self.optimizer_box)
        opt.addRow(self.optimizer_about)
        self.optimizer_params = self._host(self.optimizer_box)
        opt.addRow(self.optimizer_params)
        self.schedule_combo = self._choice_combo(
            self.optimizer_box, [(None, "None: a constant learning rate", "the learning rate stays as set")]
            + [(s.type, s.type, s.summary) for s in all_schedules()], "")
        self.schedule_combo.setObjectName("scheduleCombo")
        self.schedule_combo.currentIndexChanged.connect(self._on_schedule_chosen)
        opt.addRow(self._caption("Schedule", self.optimizer_box, "how the learning rate changes during training"),
                   self.schedule_combo)
        self._search_actions[("schedule", "type")] = self._offer_search(self.schedule_combo, "schedule.type",
                                                                        "the schedule")
        self.schedule_about = self._about_label(self.optimizer_box)
        opt.addRow(self.schedule_about)
        self.schedule_params = self._host(self.optimizer_box)
        opt.addRow(self.schedule_params)
        body.addWidget(self.optimizer_box)

        # -- training
        body.addWidget(section_label("Training", page))
        self.training_box = QWidget(page)
        tr = self._form(self.training_box)
        for name in ("epochs",):
            self._add_field(tr, "training", (name,), _param(TRAINING_PARAMS, name), "training")
        self._add_field(tr, "training", ("l1",), _param(TRAINING_PARAMS, "l1"), "training")
        wd = _param(get_optimizer("Adam").params, "weight_decay")
        self._add_field(tr, "optimizer", ("params", "weight_decay"), wd, "Adam")
        self._add_field(tr, "training", ("grad_clip",), _param(TRAINING_PARAMS, "grad_clip"), "training")
        es = Param("early_stopping", BOOL, False, "stop when the watched figure has not improved for `patience` "
                   "epochs (and put back the best epoch's weights)")
        self._add_field(tr, "training", ("early_stopping",), es, "training").toggle = True
        for name in ("patience", "monitor"):
            self._add_field(tr, "training", ("early_stopping", name), _param(EARLY_STOPPING_PARAMS, name),
                            "early_stopping")
        self._add_field(tr, "training", ("device",), _param(TRAINING_PARAMS, "device"), "training")
        self.device_note = QLabel(self.training_box)
        self.device_note.setWordWrap(True)
        self.device_note.setProperty("muted", True)
        tr.addRow(self.device_note)
        self._add_field(tr, "training", ("seed",), _param(TRAINING_PARAMS, "seed"), "training")
        body.addWidget(self.training_box)
        body.addStretch(1)
        self.refresh_devices()

    def _form(self, host: QWidget) -> QFormLayout:
        form = QFormLayout(host)
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(12)
        form.setVerticalSpacing(6)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        return form

    def _host(self, parent: QWidget) -> QWidget:
        host = QWidget(parent)
        lay = QVBoxLayout(host)
        lay.setContentsMargins(0, 0, 0, 0)
        return host

    def _caption(self, text: str, parent: QWidget, tip: str = "") -> QLabel:
        label = QLabel(text, parent)
        label.setToolTip(tip)
        label.setMinimumWidth(96)
        return label

    def _about_label(self, parent: QWidget) -> QLabel:
        label = QLabel(parent)
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setProperty("about", True)
        label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        return label

    def _source_model(self) -> QStandardItemModel:
        model = QStandardItemModel(self)
        specs = sources()
        for category, title in GROUPS:
            group = [s for s in specs if (s.category == category if category else s.category not in (GENERATED,
                                                                                                     FILE))]
            if not group:
                continue
            head = QStandardItem(title)
            head.setFlags(Qt.ItemFlag.NoItemFlags)
            f = QFont(self.font())
            f.setBold(True)
            head.setFont(f)
            model.appendRow(head)
            for s in group:
                item = QStandardItem(SOURCE_NAMES.get(s.type, s.type))
                item.setData(s.type, Qt.ItemDataRole.UserRole)
                item.setToolTip(f"{s.type}: {s.summary}")
                model.appendRow(item)
        return model

    def _choice_combo(self, parent: QWidget, items: list[tuple[Any, str, str]], placeholder: str) -> QComboBox:
        combo = narrow_combo(QComboBox(parent))
        for value, text, tip in items:
            combo.addItem(text, value)
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        if placeholder:
            combo.setPlaceholderText(placeholder)
        combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        combo.installEventFilter(self)
        return combo

    def _add_field(self, form: QFormLayout, section: str, path: tuple[str, ...], param: Param, owner: str,
                   label: str | None = None) -> _Field:
        parent = form.parentWidget()
        label = label or LABELS.get((section, *path), param.name)
        kind = param.kind
        fields: list[_Field] = []
        names = (lambda c: DEVICE_LABELS.get(c, c)) if param.name == "device" else None
        w, error = param_editor(param, parent, f"{section}_{'_'.join(path)}", self, lambda: self._commit(fields[0]),
                                spin_ints=False, label=names)
        tip = w.toolTip()
        field = _Field(section, path, param, w, error, owner, label)
        fields.append(field)
        caption = self._caption(label, parent, tip)
        row = QWidget(parent)
        col = QVBoxLayout(row)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        if kind == PATH:
            line = QHBoxLayout()
            line.setSpacing(4)
            line.addWidget(w, 1)
            browse = QPushButton("Browse…", row)
            browse.setObjectName(f"browse_{param.name}")
            browse.setToolTip("choose the file (or folder); inside the project's folder it is stored relative to it")
            browse.clicked.connect(lambda *_: self._on_browse(field))
            line.addWidget(browse)
            col.addLayout(line)
        else:
            col.addWidget(w)
        col.addWidget(error)
        form.addRow(caption, row)
        field.row, field.caption = row, caption
        self._fields[field.key] = field
        if kind in SEARCHABLE_KINDS:
            if section in ("optimizer", "schedule") and len(path) == 2 and path[0] == "params":
                field.search_action = self._offer_search(w, f"{section}.{path[1]}", label)
            elif section == "training" and len(path) == 1 and path[0] in TRAINING_TARGETS:
                field.search_action = self._offer_search(w, f"training.{path[0]}", label)
        return field

    def _rebuild_params(self, host: QWidget, section: str, params: tuple[Param, ...], owner: str,
                        skip: tuple[str, ...] = ()) -> None:
        """Replace the generated editors of a catalogue choice (a data source, a loss ...)."""
        for key in [k for k in self._fields if k[0] == section and len(k) == 3 and k[1] == "params"
                    and (section, *k[1:]) != ("optimizer", "params", "weight_decay")]:
            f = self._fields.pop(key)
            f.widget.blockSignals(True)  # hiding a focused editor must not commit into the new choice
        lay = host.layout()
        while lay.count():
            item = lay.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()
                item.widget().deleteLater()
        shown = [p for p in params if p.name not in skip]
        if not shown:
            return
        form_widget = QWidget(host)
        form = self._form(form_widget)
        for p in shown:
            self._add_field(form, section, ("params", p.name), p, owner)
        lay.addWidget(form_widget)
        form_widget.show()  # now: a grab or a test right after must see it
        self._color_labels(form_widget)

    # ---- reading the project --------------------------------------------------------------------------------------
    def _section(self, key: str) -> Any:
        value = copy.deepcopy(getattr(self._doc.project, key)) if self._doc is not None else None
        if key == "optimizer" and not value:
            return copy.deepcopy(DEFAULT_OPTIMIZER)
        if key == "training":
            return value or {}
        return value

    def _data_view(self) -> dict[str, Any] | None:
        """The data settings with defaults filled in (the raw section when it does not validate)."""
        data = self._section("data")
        if not data:
            return None
        try:
            return normalize_settings(data)
        except LayerLoomError:
            return data

    def _value_of(self, f: _Field) -> Any:
        if f.section == "data":
            return _get(self._data_view(), f.path, f.param.default)
        section = self._section(f.section)
        if f.toggle:
            es = section.get("early_stopping")
            return es is not None and es is not False
        if f.section == "training" and f.path[0] == "early_stopping":
            es = section.get("early_stopping")
            return _get(es if isinstance(es, dict) else {}, f.path[1:], f.param.default)
        return _get(section, f.path, f.param.default)

    # ---- refreshing -----------------------------------------------------------------------------------------------
    def _refresh_all(self) -> None:
        has_doc = self._doc is not None
        self.no_doc.setVisible(not has_doc)
        for key in ("data", "loss", "optimizer", "schedule", "training"):
            self._refresh_section(key)
        self._update_enabled()

    def _refresh_section(self, key: str) -> None:
        if key == "data":
            self._refresh_data()
        elif key == "loss":
            self._refresh_loss()
        elif key in ("optimizer", "schedule"):
            self._refresh_optimizer()
        elif key == "training":
            self._write_fields("training")
            self._update_enabled()

    def _write_fields(self, section: str) -> None:
        for f in list(self._fields.values()):
            if f.section == section:
                f.show_error("")  # an undo or redo makes an earlier refusal moot
                f.write(self._value_of(f))

    def _set_combo(self, combo: QComboBox, value: Any) -> None:
        was = combo.blockSignals(True)
        try:
            i = -1
            model = combo.model()
            for k in range(combo.count()):
                item = model.item(k) if isinstance(model, QStandardItemModel) else None
                if item is not None and not item.isSelectable():
                    continue  # a group heading
                data = combo.itemData(k, Qt.ItemDataRole.UserRole)
                same_text = isinstance(data, str) and isinstance(value, str) and data.lower() == value.lower()
                if data == value or same_text:
                    i = k
                    break
            combo.setCurrentIndex(i)
        finally:
            combo.blockSignals(was)

    def _refresh_data(self) -> None:
        data = self._section("data")
        source = data.get("source") if isinstance(data, dict) else None
        try:
            spec = get_source(source) if source else None
        except LayerLoomError:
            spec = None
        self._set_combo(self.source_combo, spec.type if spec else None)
        name = spec.type if spec else None
        if name != self._built["data"]:
            self._built["data"] = name
            self._rebuild_params(self.source_params, "data", spec.params if spec else (),
                                 f"data source {name}" if spec else "data")
        self._write_fields("data")
        self._write_fields("training")
        if spec is None:
            self.source_about.setText(f"<span style='color:{self._muted}'>Pick the samples to learn from: a bundled "
                                      f"set, a generated one, or your own file.</span>" if not source else
                                      f"<span style='color:{ERROR_COLOR}'>Unknown data source "
                                      f"{html.escape(str(source))}: pick one from the list.</span>")
        else:
            gives = (f"<br><span style='color:{self._muted}'>Gives {html.escape(spec.gives)}</span>"
                     if spec.gives else "")
            self.source_about.setText(f"{html.escape(spec.summary[:1].upper() + spec.summary[1:])}.{gives}")
            self.source_about.setToolTip(spec.doc)
        image = bool(spec and spec.image)
        for f in self._fields.values():
            if f.section == "data" and f.path[0] == "augment":
                f.row.setVisible(image)
                f.caption.setVisible(image)
        self.augment_title.setVisible(image)
        self._update_enabled()
        self._schedule_preview()

    def _refresh_loss(self) -> None:
        loss = self._section("loss")
        try:
            spec = get_loss(loss["type"]) if loss else None
        except LayerLoomError:
            spec = None
        self._set_combo(self.loss_combo, spec.type if spec else None)
        if (spec.type if spec else None) != self._built["loss"]:
            self._built["loss"] = spec.type if spec else None
            self._rebuild_params(self.loss_params, "loss", spec.params if spec else (), spec.type if spec else "loss")
        self._write_fields("loss")
        if spec is None:
            self.loss_about.setText(f"<span style='color:{self._muted}'>Choose the loss that suits the data: "
                                    f"CrossEntropy for classes, MSE for numbers.</span>")
        else:
            self.loss_about.setText(self._spec_html(spec, extra=f"Targets: {spec.target}"))
        self._update_fit()

    def _refresh_optimizer(self) -> None:
        opt = self._section("optimizer")
        try:
            spec = get_optimizer(opt["type"])
        except (LayerLoomError, KeyError, TypeError):
            spec = get_optimizer(DEFAULT_OPTIMIZER["type"])
        self._set_combo(self.optimizer_combo, spec.type)
        if spec.type != self._built["optimizer"]:
            self._built["optimizer"] = spec.type
            self._rebuild_params(self.optimizer_params, "optimizer", spec.params, spec.type, skip=("weight_decay",))
        wd = self._fields[("optimizer", "params", "weight_decay")]
        wd.param = next((p for p in spec.params if p.name == "weight_decay"), wd.param)
        wd.owner = spec.type
        wd.widget.setToolTip(param_tooltip(wd.param))
        self.optimizer_about.setText(self._spec_html(spec, doc=False))
        self.optimizer_about.setToolTip(spec.doc)
        self._write_fields("optimizer")

        sched = self._section("schedule")
        try:
            sspec = get_schedule(sched["type"]) if sched else None
        except LayerLoomError:
            sspec = None
        self._set_combo(self.schedule_combo, sspec.type if sspec else None)
        if (sspec.type if sspec else None) != self._built["schedule"]:
            self._built["schedule"] = sspec.type if sspec else None
            self._rebuild_params(self.schedule_params, "schedule", sspec.params if sspec else (),
                                 sspec.type if sspec else "schedule")
        self.schedule_about.setText(self._spec_html(sspec, doc=False) if sspec else "")
        self.schedule_about.setVisible(sspec is not None)
        if sspec is not None:
            self.schedule_about.setToolTip(sspec.doc)
        self._write_fields("schedule")
        self._update_enabled()

    def _spec_html(self, spec, doc: bool = True, extra: str = "") -> str:
        esc = html.escape
        parts = [f"<b>{esc(spec.summary[:1].upper() + spec.summary[1:])}.</b>"]
        if doc and spec.doc:
            parts.append(f"<div style='color:{self._muted}; margin-top:3px'>{esc(spec.doc)}</div>")
        if spec.formula:
            parts.append(f"<table width='100%' cellpadding='6' cellspacing='0' style='margin-top:5px; "
                         f"background-color:{self._box}'><tr><td style='font-family:\"DejaVu Serif\", "
                         f"\"Cambria Math\", serif'>{esc(spec.formula)}</td></tr></table>")
        if extra:
            parts.append(f"<div style='color:{self._muted}; margin-top:4px'>{esc(extra)}</div>")
        return "".join(parts)

    def _update_enabled(self) -> None:
        has_doc = self._doc is not None
        editable = has_doc and not self._locked
        for box in (self.data_box, self.loss_box, self.optimizer_box, self.training_box):
            box.setEnabled(editable)
        if not editable:
            return
        has_source = bool(self._section("data") and self._section("data").get("source"))
        for f in self._fields.values():
            if f.section == "data" and f.path[0] in ("split", "augment"):
                f.widget.setEnabled(has_source)
        on = self._value_of(self._fields[("training", "early_stopping")])
        for name in ("patience", "monitor"):
            self._fields[("training", "early_stopping", name)].widget.setEnabled(bool(on))

    # ---- edits ----------------------------------------------------------------------------------------------------
    def _check(self, section: str, value: Any) -> None:
        """Raise the engine's error when a section would be refused by training."""
        if section == "data":
            normalize_settings(value)
        elif section == "loss" and value:
            get_loss(value["type"]).validate_params(value.get("params") or {})
        elif section == "optimizer" and value:
            get_optimizer(value["type"]).validate_params(value.get("params") or {})
        elif section == "schedule" and value:
            get_schedule(value["type"]).validate_params(value.get("params") or {})
        elif section == "training":
            training_config(value)

    def _commit(self, f: _Field) -> None:
        doc = self._doc
        if doc is None or self._locked or not isValid(self) or self._fields.get(f.key) is not f:
            return
        current = self._value_of(f)
        try:
            value = f.read()
            value = f.param.validate(f.owner, value) if not f.toggle else bool(value)
            if value == current:
                f.show_error("")
                f.write(current)  # the canonical text: "1e-3" stays 0.001
                return
            section = self._section(f.section)
            if f.toggle:
                new = dict(section)
                if value:
                    new["early_stopping"] = {}
                else:
                    new.pop("early_stopping", None)
            elif f.section == "training" and f.path[0] == "early_stopping":
                es = section.get("early_stopping")
                new = dict(section)
                new["early_stopping"] = _with(es if isinstance(es, dict) else {}, f.path[1:], value)
            else:
                new = _with(section, f.path, value)
            self._check(f.section, new)
            text = f"{f.label}: {self._show(f, current)} → {self._show(f, value)}"
            doc.set_section(f.section, new, text=text)
        except LayerLoomError as e:
            f.show_error(str(e))
            f.write(current)  # back to the value the project has: a refused edit changes nothing
            self.message.emit(str(e))
            return
        if self._fields.get(f.key) is f:
            f.show_error("")
            f.write(self._value_of(f))
        self.message.emit(text)

    def _show(self, f: _Field, value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        return f.text_of(value) or "not set"

    def _push(self, section: str, value: Any, text: str) -> bool:
        """Check and push a whole section (a new choice of source, loss ...); a refusal goes to message."""
        if self._doc is None or self._locked:
            return False
        try:
            self._check(section, value)
            self._doc.set_section(section, value, text=text)
        except LayerLoomError as e:
            self.message.emit(str(e))
            self._refresh_section(section)
            return False
        self.message.emit(text)
        return True

    def _on_source_chosen(self, _index: int) -> None:
        name = self.source_combo.currentData(Qt.ItemDataRole.UserRole)
        old = self._section("data") or {}
        if not name or name == old.get("source"):
            return
        spec = get_source(name)
        new: dict[str, Any] = {"source": spec.type, "params": {}}
        if old.get("split"):
            new["split"] = copy.deepcopy(old["split"])
        if spec.image and old.get("augment"):
            new["augment"] = copy.deepcopy(old["augment"])  # augmentation only makes sense for images
        if not self._push("data", new, f"Data source: {SOURCE_NAMES.get(spec.type, spec.type)}"):
            self._refresh_data()

    def _on_loss_chosen(self, _index: int) -> None:
        name = self.loss_combo.currentData()
        old = self._section("loss")
        if not name or (old and old.get("type") == name):
            return
        self._push("loss", {"type": name, "params": {}}, f"Loss: {name}")

    def _on_optimizer_chosen(self, _index: int) -> None:
        name = self.optimizer_combo.currentData()
        old = self._section("optimizer")
        if not name or old.get("type") == name:
            return
        params = {}
        lr = (old.get("params") or {}).get("lr")
        if lr is not None:
            params["lr"] = lr  # the learning rate someone chose outlives the optimizer
        self._push("optimizer", {"type": name, "params": params}, f"Optimizer: {name}")

    def _on_schedule_chosen(self, _index: int) -> None:
        name = self.schedule_combo.currentData()
        old = self._section("schedule")
        if (old.get("type") if old else None) == name:
            return
        self._push("schedule", {"type": name, "params": {}} if name else None,
                   f"Schedule: {name}" if name else "Schedule: none")

    def _on_browse(self, f: _Field) -> None:
        doc = self._doc
        start = str(doc.path.parent) if doc is not None and doc.path else os.getcwd()
        source = self._built["data"]
        if source == "image_folder":
            chosen = QFileDialog.getExistingDirectory(self, f"Choose the {f.param.name} folder", start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, f"Choose the {f.param.name} file", start,
                                                    FILE_FILTERS.get(source or "", "All files (*)"))
        if chosen:
            self.set_path(f.path[-1], chosen)

    def set_path(self, name: str, path: str | os.PathLike) -> None:
        """Put a chosen file into the data source's path setting `name` (what Browse does): stored relative to
        the project's folder when it lies inside it."""
        f = self._fields[("data", "params", name)]
        folder = self._doc.path.parent if self._doc is not None and self._doc.path else None
        f.widget.setText(path_for_project(path, folder))
        self._commit(f)

    # ---- the preview ----------------------------------------------------------------------------------------------
    def _base_dir(self) -> str | None:
        doc = self._doc
        return str(doc.path.parent) if doc is not None and doc.path else None

    def _schedule_preview(self) -> None:
        self._preview_timer.start()

    def _set_state(self, state: str) -> None:
        self._preview_state = state
        self.preview_changed.emit(state)

    def _start_preview(self) -> None:
        if not isValid(self):
            return
        data = self._section("data")
        if not data or not data.get("source"):
            self._bundle, self._bundle_key = None, None
            self._show_preview_message("Choose a data source to see its samples here.", self._muted)
            self._set_state("empty")
            return
        key = json.dumps({"data": data, "base": self._base_dir()}, sort_keys=True, default=str)
        if key == self._bundle_key and self._bundle is not None and self._preview_state == "ready":
            self._show_bundle(self._bundle)
            return
        if self._loading:
            self._pending = True
            return
        self._seq += 1
        self._loading = True
        self._pending = False
        self._loading_key = key
        self._show_preview_message("Loading the data…", self._muted, keep=self._bundle is not None)
        self._set_state("loading")
        threading.Thread(target=_load_in_thread, args=(self._loader, self._seq, copy.deepcopy(data),
                                                       self._base_dir()),
                         name="layerloom-data-preview", daemon=True).start()

    def _on_preview_loaded(self, seq: int, bundle, error: str) -> None:
        if not isValid(self):
            return
        self._loading = False
        if self._pending or seq != self._seq:
            self._pending = False
            self._start_preview()
            return
        if bundle is None:
            self._bundle, self._bundle_key = None, None
            self._preview_error = error
            self._show_preview_message(f"<b>The data cannot be loaded.</b> "
                                       f"{html.escape(error[:1].upper() + error[1:])}", ERROR_COLOR)
            self._set_state("error")
            self._update_fit()
            return
        self._bundle, self._bundle_key = bundle, self._loading_key
        self._preview_error = ""
        self._show_bundle(bundle)
        self._set_state("ready")
        if self._cuda is None:
            self.refresh_devices()

    def _show_preview_message(self, text: str, color: str, keep: bool = False) -> None:
        self.preview_status.setText(f"<span style='color:{color}'>{text}</span>")
        self.preview_status.show()
        if not keep:
            self.preview_stats.hide()
            self.preview_gallery.hide()
            self.preview_table.hide()
            self.fit_label.hide()
            self._fit_problems = []

    def _show_bundle(self, b) -> None:
        self.preview_status.hide()
        esc = html.escape
        what = {CLASSIFICATION: f"{b.num_classes} classes" + (
                    f" ({esc(', '.join(b.class_names[:10]))}{', …' if len(b.class_names) > 10 else ''})"
                    if b.class_names else ""),
                BINARY: "yes / no (0 or 1)" + (f": {esc(' / '.join(b.class_names))}" if b.class_names else ""),
                REGRESSION: f"numbers {fmt(b.target_shape)} to predict",
                RECONSTRUCTION: "the input itself (an autoencoder)"}[b.task]
        note = " · standardised" if "x_mean" in b.stats else ""
        rows = [("Samples", f"{b.num_samples:,d}: {len(b.train):,d} train · {len(b.val):,d} validation · "
                            f"{len(b.test):,d} test"),
                ("Each sample", f"<b>{fmt(b.sample_shape)}</b> {b.dtype}{note}"),
                ("Target", what)]
        cells = "".join(f"<tr><td style='color:{self._muted}; padding-right:10px'>{name}</td><td>{value}</td></tr>"
                        for name, value in rows)
        self.preview_stats.setText(f"<table cellspacing='0' cellpadding='1'>{cells}</table>")
        self.preview_stats.show()
        self._show_samples(b)
        self._update_fit()

    def _show_samples(self, b) -> None:
        train = b.train
        k = min(len(train), PREVIEW_SAMPLES)
        x = train.x[:k]
        images = None
        if b.is_image:
            images = x
        elif b.dtype == "float32" and len(b.sample_shape) == 1:
            try:
                spec = get_source(b.source)
            except LayerLoomError:
                spec = None
            n = b.sample_shape[0]
            for c in (1, 3):  # a flattened image source: show the images, not 784 numbers
                side = math.isqrt(n // c) if n % c == 0 else 0
                if spec is not None and spec.image and side and side * side * c == n:
                    images = x.reshape(k, c, side, side)
                    break
        labels = [self._target_text(b, train.y[i]) for i in range(k)]
        if images is not None:
            self.preview_table.hide()
            self.preview_gallery.set_samples(images, labels, list(range(k)),
                                             tooltips=[f"training sample {i}: {t}" if t else f"training sample {i}"
                                                       for i, t in enumerate(labels)],
                                             value_range=image_range(images))
            self.preview_gallery.show()
            return
        self.preview_gallery.hide()
        m = min(len(train), PREVIEW_ROWS)
        target = "label" if b.task in (CLASSIFICATION, BINARY) else "target"
        text = b.dtype == "int64" and b.vocabulary is not None
        if text:
            vocab = b.vocabulary
            headers = [target, "text (word ids read back)"]
            rows = []
            for i in range(m):
                words = [vocab[t] if 0 <= t < len(vocab) else "?" for t in train.x[i].ravel() if t != 0]
                rows.append([labels[i], " ".join(words)])
        else:
            flat = train.x[:m].reshape(m, -1)
            cols = min(8, flat.shape[1])
            names = list(b.feature_names or [])
            headers = [target] + [names[c] if c < len(names) else f"x{c}" for c in range(cols)]
            if flat.shape[1] > cols:
                headers.append(f"… {flat.shape[1] - cols} more")
            rows = [[labels[i]] + [float(v) for v in flat[i, :cols]] + (["…"] if flat.shape[1] > cols else [])
                    for i in range(m)]
        if b.task == RECONSTRUCTION:
            headers, rows = headers[1:], [r[1:] for r in rows]
        self.preview_table.set_rows(headers, rows, stretch=len(headers) - 1 if text else None)
        self.preview_table.show()

    def _target_text(self, b, y) -> str:
        if b.task == CLASSIFICATION:
            i = int(np.asarray(y).reshape(-1)[0])
            return b.class_names[i] if b.class_names and 0 <= i < len(b.class_names) else str(i)
        if b.task == BINARY:
            i = int(round(float(np.asarray(y).reshape(-1)[0])))
            return b.class_names[i] if b.class_names and 0 <= i < len(b.class_names) else str(i)
        if b.task == REGRESSION:
            values = np.asarray(y, dtype=np.float64).reshape(-1)
            return ", ".join(f"{v:.3g}" for v in values[:3]) + ("…" if len(values) > 3 else "")
        return ""

    # ---- fit ------------------------------------------------------------------------------------------------------
    def _network_ends(self) -> tuple[Any, Any, str | None, str]:
        """(input info, output info, last layer type, why not known) from the document's latest analysis."""
        doc = self._doc
        graph, analysis = doc.graph, doc.analysis
        inputs, sinks = graph.input_nodes(), graph.sink_nodes()
        if len(inputs) != 1 or len(sinks) != 1:
            return None, None, None, (f"the fit is checked for networks with one Input and one output; this one has "
                                      f"{len(inputs)} Input(s) and {len(sinks)} output(s)")
        xi, yi = analysis.nodes.get(inputs[0]), analysis.nodes.get(sinks[0])
        last = graph.nodes[sinks[0]].type if sinks[0] in graph else None
        return xi, yi, last, ""

    def _update_fit(self) -> None:
        doc, b = self._doc, self._bundle
        if doc is None:
            return
        loss = self._section("loss")
        loss_type = loss.get("type") if loss else None
        try:
            xi, yi, last, why = self._network_ends()
        except Exception:  # an analysis from an edit still in flight: the next one updates this
            return
        out_shape = yi.shape if yi is not None and yi.ok else None
        self._update_loss_advice(loss_type, out_shape, last)
        if b is None:
            self.fit_label.hide()
            self._fit_problems = []
            return
        if why:
            self._fit_problems = []
            self._show_fit([why], WARNING_COLOR, "Fit not checked")
            return
        in_shape = xi.shape if xi is not None and xi.shape is not None else None
        try:
            problems = fit_problems(b, in_shape, xi.dtype if xi is not None else None, out_shape,
                                    loss_type if loss_type else None)
        except LayerLoomError as e:
            problems = [str(e)]
        self._fit_problems = problems
        waiting = []
        if yi is not None and not yi.ok:
            waiting.append("the network has errors, so its output shape is not known yet: the output and the loss "
                           "are checked once they are fixed")
        if not loss_type:
            waiting.append("choose a loss to check the targets against it")
        if problems:
            self._show_fit(problems + waiting, ERROR_COLOR, "The data does not fit the network yet")
        elif waiting:
            self._show_fit(waiting, WARNING_COLOR, f"The data fits the Input {fmt(in_shape) if in_shape else ''}")
        else:
            self._show_fit([f"Input {fmt(in_shape)} {xi.dtype} takes the data's {fmt(b.sample_shape)} {b.dtype}; "
                            f"the output {fmt(out_shape)} suits {loss_type} on this data"], OK_COLOR,
                           "✓ The data fits the network")

    def _show_fit(self, lines: list[str], color: str, title: str) -> None:
        bg = blend(self.palette().color(QPalette.ColorRole.Base), QColor(color), 0.12).name()
        items = "".join(f"<li style='margin-bottom:2px'>{html.escape(m[:1].upper() + m[1:])}</li>" for m in lines)
        body = (f"<ul style='margin:2px 0 0 -24px'>{items}</ul>" if len(lines) > 1 else
                f"<div>{html.escape(lines[0][:1].upper() + lines[0][1:])}</div>")
        self.fit_label.setText(f"<b style='color:{color}'>{html.escape(title)}</b>{body}")
        self.fit_label.setStyleSheet(f"QLabel#fitLabel {{ background: {bg}; border-left: 3px solid {color};"
                                     f" padding: 6px 8px; }}")
        self.fit_label.show()

    def _update_loss_advice(self, loss_type: str | None, out_shape, last: str | None) -> None:
        advice: list[str] = []
        if loss_type:
            try:
                advice = check_loss_fit(loss_type, out_shape, last)
            except LayerLoomError as e:
                advice = [str(e)]
        if not advice:
            self.loss_advice.hide()
            return
        bg = blend(self.palette().color(QPalette.ColorRole.Base), QColor(WARNING_COLOR), 0.12).name()
        self.loss_advice.setText("<br>".join(f"<span style='color:{WARNING_COLOR}'>▲</span> "
                                             f"{html.escape(m[:1].upper() + m[1:])}" for m in advice))
        self.loss_advice.setStyleSheet(f"QLabel#lossAdvice {{ background: {bg}; border-left: 3px solid "
                                       f"{WARNING_COLOR}; padding: 6px 8px; }}")
        self.loss_advice.show()

    # ---- handlers -------------------------------------------------------------------------------------------------
    def _on_section_changed(self, key: str) -> None:
        if isValid(self):
            self._refresh_section(key)

    def _on_analyzed(self, _analysis) -> None:
        if isValid(self):
            self._update_fit()

    def _on_path_changed(self, _path: str) -> None:
        if isValid(self):
            self._schedule_preview()  # relative file paths now start somewhere else

    # ---- colours ---------------------------------------------------------------------------------------------------
    def _apply_palette_colors(self) -> None:
        pal = self.palette()
        text, base = pal.color(QPalette.ColorRole.Text), pal.color(QPalette.ColorRole.Base)
        self._muted = blend(text, base, 0.42).name()
        self._box = blend(base, QColor("#3b7dd8"), 0.10).name()

    def _color_labels(self, root: QWidget) -> None:
        for label in root.findChildren(QLabel):
            if label.property("muted") or label.property("section"):
                label.setStyleSheet(f"color: {self._muted};")

    def _apply_colors(self) -> None:
        self._apply_palette_colors()
        self._color_labels(self)
        bg = blend(self.palette().color(QPalette.ColorRole.Base), QColor(WARNING_COLOR), 0.16).name()
        self.lock_banner.setStyleSheet(f"QLabel#lockBanner {{ background: {bg}; border-left: 3px solid "
                                       f"{WARNING_COLOR}; padding: 6px 8px; }}")

    # ---- Qt overrides ----------------------------------------------------------------------------------------------
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QComboBox) and not watched.hasFocus():
            QCoreApplication.sendEvent(self.scroll.verticalScrollBar(), event)  # it scrolls the form, never
            return True  # changes a choice it happens to pass over
        return super().eventFilter(watched, event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._cuda is None:
            self.refresh_devices()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "lock_banner"):
            self._apply_colors()
            self._built = {"data": None, "loss": None, "optimizer": None, "schedule": None}
            self._refresh_all()
            if self._bundle is not None and self._preview_state == "ready":
                self._show_bundle(self._bundle)


__all__ = ["TrainingSetupPanel", "path_for_project"]
