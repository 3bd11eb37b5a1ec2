#!/usr/bin/env python3
"""Take the README's screenshots from the real LayerLoom window: the start page, a template open, a layer with an
error and its tooltip, the palette search, the dark theme, and a network built up from an empty project.

    python3 scripts/screenshots.py                # writes docs/images/*.png
    python3 scripts/screenshots.py --out shots    # somewhere else
    python3 scripts/screenshots.py --only error-badge dark-theme
    QT_QPA_PLATFORM=xcb xvfb-run -s "-screen 0 1920x1200x24" python3 scripts/screenshots.py   # a real X server

It drives the MainWindow as the tests do, with settings, recent files and autosaves in a temporary folder (never
the user's own), on Qt's offscreen platform unless QT_QPA_PLATFORM names another. A tooltip is a window of its own,
so the error-badge shot paints it onto the window's picture where it stands on the screen. Started with a Python
that has no PySide6, the script runs itself again with the project's .venv/bin/python.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1440, 900)
PALETTE_WIDTH = 330   # the palette shot widens the dock a little, as a user would to read the explanation
SCREEN = (1920, 1200)  # the offscreen screen: room for the window, and for a tooltip where Qt puts it


def _use_project_python() -> None:
    try:
        import PySide6  # noqa: F401
    except ImportError:
        venv = ROOT / ".venv" / "bin" / "python"
        if venv.exists() and Path(sys.executable).resolve() != venv.resolve():
            os.execv(str(venv), [str(venv), str(Path(__file__).resolve()), *sys.argv[1:]])
        sys.exit("screenshots: PySide6 is not installed for this Python; `python3 run.py` sets up .venv first")


_use_project_python()
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QAbstractItemView, QApplication, QToolTip  # noqa: E402

from engine.templates import template_path  # noqa: E402
from gui.app import APP, DISCARD, MainWindow  # noqa: E402
from gui.autosave import Autosaver  # noqa: E402
from gui.canvas.items import LOD_LABEL, NODE_HEIGHT  # noqa: E402


def private_environment(tmp: Path) -> None:
    """A home, settings and data folders of our own, no dialogs, and a large offscreen screen. Must run before
    the QApplication exists."""
    home = tmp / "home" / "ada"
    home.mkdir(parents=True)
    os.environ["HOME"] = str(home)  # the recent files then read ~/Projects/…, as on a user's machine
    for name in ("CONFIG", "DATA", "CACHE"):
        folder = tmp / name.lower()
        folder.mkdir()
        os.environ[f"XDG_{name}_HOME"] = str(folder)
    os.environ["LAYERLOOM_NO_DIALOGS"] = "1"
    if not os.environ.get("QT_QPA_PLATFORM"):
        config = tmp / "offscreen.json"
        config.write_text(json.dumps({"screens": [{"name": "screenshots", "x": 0, "y": 0, "width": SCREEN[0],
                                                   "height": SCREEN[1], "logicalDpi": 96, "dpr": 1}]}))
        os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"


class Shooter:
    """The real main window at a fixed size, and one method per picture."""

    def __init__(self, app: QApplication, tmp: Path, out: Path):
        self.app, self.tmp, self.out = app, tmp, out
        settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
        self.window = MainWindow(settings=settings, autosaver=Autosaver(tmp / "autosave"))
        self.window.ask_save_changes = lambda: DISCARD  # switching projects between shots asks nothing
        self.window.set_theme("light")
        self.window.move(0, 0)
        self.window.resize(*WINDOW)
        self.window.show()
        self.window.activateWindow()
        self.settle()
        self._warm_up_torch()

    # ---- plumbing ------------------------------------------------------------------------------------------
    def settle(self, ms: int = 250) -> None:
        """Let the app run for a while, as between a user's actions: timers (the coalesced analysis, the fit
        after a document change, the zoom settling) fire, widgets dropped with deleteLater go and everything
        paints. Sleeps between rounds instead of QTest.qWait, which keeps Python's lock and would stall the
        PyTorch warm-up thread."""
        deadline = time.monotonic() + ms / 1000
        while True:
            self.app.processEvents()
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def _warm_up_torch(self, seconds: float = 120.0) -> None:
        """As the app does once it shows: the status bar then says PyTorch is ready rather than loading."""
        w = self.window
        w.warm_up.start()
        for _ in range(int(seconds * 10)):
            if not w.torch_label.text().startswith("loading"):
                break
            self.settle(100)

    def save(self, name: str, picture: QPixmap) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{name}.png"
        if not picture.save(str(path), "PNG"):
            raise OSError(f"could not write {path}")
        return path

    def grab(self) -> QPixmap:
        self.settle()
        return self.window.grab()

    def frame(self, top_node: str, bottom_node: str, most: float = 0.9, margin: float = 28.0) -> None:
        """Zoom the canvas so that the nodes from `top_node` down to `bottom_node` fill its height (at most
        `most`, never below the zoom at which wires show their shape labels), `top_node` near the top edge.
        A fit would shrink a long chain past that zoom. The margin keeps the wire coming into `top_node` and
        its label in sight, and the node above it out."""
        view = self.window.view
        nodes = view.scene().nodes
        top, bottom = nodes[top_node], nodes[bottom_node]
        span = bottom.y() - top.y() + NODE_HEIGHT + 12  # 12: the output port and the next wire's start
        zoom = max(LOD_LABEL + 0.02, min(most, (view.viewport().height() - margin) / span))
        view.fit()
        view.zoom_in()  # the public way in, then the exact factor
        view._zoom_by(zoom / view.zoom())  # noqa: SLF001 - the view's own clamped zoom with room to scroll
        view.settle_zoom()
        half_height = view.viewport().height() / 2 / zoom
        view.centerOn(QPointF(top.x(), top.y() - NODE_HEIGHT / 2 - margin / zoom + half_height))
        self.settle()

    def scroll_summary_to(self, node_id: str) -> None:
        """Scroll the summary table (without selecting) so that the node's row is in sight."""
        summary = self.window.summary
        index = summary.proxy.mapFromSource(summary.model.index(summary.model.row_of(node_id), 0))
        summary.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def open_template(self, name: str) -> None:
        self.window.new_from_template(name)
        self.window.summary.table.scrollToTop()
        self.settle()

    # ---- the pictures --------------------------------------------------------------------------------------
    def start_page(self) -> QPixmap:
        projects = Path.home() / "Projects"
        projects.mkdir(parents=True, exist_ok=True)
        for template, mine in (("mlp_mnist_128", "digits-mlp"), ("cnn_mnist", "digits-cnn")):
            target = projects / f"{mine}.layerloom"
            shutil.copyfile(template_path(template), target)
            self.window.add_recent(target)  # the newest comes first
        self.window.show_start_page()
        return self.grab()

    def template_open(self) -> QPixmap:
        self.open_template("cnn_mnist")
        self.window.view.select_nodes(["conv2d_2"])
        self.frame("input_1", "maxpool2d_2")
        return self.grab()

    def error_badge(self) -> QPixmap:
        w = self.window
        self.open_template("cnn_mnist")
        w.document.set_params("conv2d_2", {"kernel_size": 50})  # larger than its 13×13 input: a real error
        self.settle()
        w.view.select_nodes(["conv2d_2"])
        self.frame("input_1", "maxpool2d_2")
        self.scroll_summary_to("conv2d_2")
        badge = w.view.scene().nodes["conv2d_2"].badge
        assert badge is not None and badge.isVisible(), "the Conv2d shows no error badge"
        at = w.view.viewport().mapToGlobal(w.view.mapFromScene(badge.scenePos()))
        QToolTip.showText(at, badge.toolTip(), w.view.viewport())
        shot = self.grab()
        tip = next((t for t in QApplication.topLevelWidgets() if t.isVisible() and t.inherits("QTipLabel")), None)
        assert tip is not None, "the badge's tooltip did not show"
        painter = QPainter(shot)
        painter.drawPixmap(tip.pos() - w.mapToGlobal(QPoint(0, 0)), tip.grab())
        painter.end()
        QToolTip.hideText()
        return shot

    def palette_search(self) -> QPixmap:
        w = self.window
        self.open_template("conv_autoencoder")
        w.view.select_nodes(["convtranspose2d_1"])
        # A wider palette with room for the explanation, as a user drags it when reading about layers.
        w.resizeDocks([w.palette_dock], [PALETTE_WIDTH], Qt.Orientation.Horizontal)
        palette = w.palette_widget
        palette.search.setFocus()
        QTest.keyClicks(palette.search, "conv")
        palette.select_layer("Conv2d")
        total = sum(palette.splitter.sizes())
        palette.splitter.setSizes([int(total * 0.34), total - int(total * 0.34)])
        self.settle()
        return self.grab()

    def dark_theme(self) -> QPixmap:
        w = self.window
        w.palette_widget.set_filter("")
        w.resizeDocks([w.palette_dock], [250], Qt.Orientation.Horizontal)  # back to the window's own layout
        self.open_template("residual_block")
        w.set_theme("dark")
        self.settle()
        w.view.select_nodes(["add_1"])
        # The palette explains the layer selected on the canvas. Chosen after the switch: an explanation shown
        # before it keeps the light theme's formula box until another layer is picked.
        w.palette_widget.select_layer("Add")
        self.frame("conv2d_1", "add_1")  # the skip connection around the block, with its shapes on the wires
        shot = self.grab()
        w.set_theme("light")
        self.settle()
        return shot

    def build_from_empty(self) -> QPixmap:
        w = self.window
        w.new_empty()
        self.settle()
        w.view.select_nodes(["input_1"])
        ids = {}
        for layer in ("Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"):
            w.palette_widget.select_layer(layer)  # the layer the user double-clicks in the palette
            w._add_layer(layer)  # noqa: SLF001 - what that double-click calls
            ids[layer] = w.view.selected_nodes()[0]
            self.settle(50)
        doc = w.document
        doc.set_params(ids["Conv2d"], {"out_channels": 16, "kernel_size": 5, "padding": 2})
        self.settle()
        w.view.tidy()
        w.view.select_nodes([ids["Linear"]])
        self.settle()
        return self.grab()

    def _train(self, template: str, epochs: int, wait_until=None) -> None:
        """Open `template` with `epochs` and press Train; return when `wait_until()` holds (or the run ends)."""
        w = self.window
        w.new_from_template(template)
        doc = w.document
        doc.set_section("training", {**(doc.project.training or {}), "epochs": epochs})
        self.settle()
        w.training.train_action.trigger()
        for _ in range(3000):
            self.settle(50)
            if not w.training.running or (wait_until is not None and wait_until()):
                return

    def training_live(self) -> QPixmap:
        """cnn_mnist on digits 28×28 while it trains: the curves, the progress and ETA, the locked network."""
        w = self.window
        w.build_training_views()
        steps = w.live_views.view("curves")
        self._train("cnn_mnist", 12, lambda: len(steps.raw_steps("loss")[0]) > 120)
        w.resizeDocks([w.live_dock], [430], Qt.Orientation.Vertical)
        w.live_views.setCurrentWidget(steps)
        picture = self.grab()
        w.training.shutdown()
        self.settle()
        return picture

    def training_filters(self) -> QPixmap:
        """The first convolution's filters after a few epochs, with the run finished."""
        w = self.window
        self._train("cnn_mnist", 4)
        w.resizeDocks([w.live_dock], [430], Qt.Orientation.Vertical)
        w.live_views.setCurrentWidget(w.live_views.view("filters"))
        return self.grab()

    def decision_boundary(self) -> QPixmap:
        """A small dense network on the 2-D moons: the TensorFlow-Playground view."""
        w = self.window
        w.new_empty()
        self.settle()
        doc = w.document
        doc.set_params("input_1", {"shape": [2]})
        w.view.select_nodes(["input_1"])
        for layer in ("Linear", "ReLU", "Linear", "ReLU", "Linear"):
            w._add_layer(layer)  # noqa: SLF001 - what a palette double-click calls
            self.settle(30)
        linears = [n for n, node in doc.graph.nodes.items() if node.type == "Linear"]
        doc.set_params(linears[0], {"out_features": 16})
        doc.set_params(linears[1], {"out_features": 16})
        doc.set_params(linears[2], {"out_features": 2})
        doc.set_section("data", {"source": "moons", "params": {"n_samples": 600, "noise": 0.2}})
        doc.set_section("loss", {"type": "CrossEntropy", "params": {}})
        doc.set_section("optimizer", {"type": "Adam", "params": {"lr": 0.02}})
        doc.set_section("training", {"epochs": 30, "batch_size": 32})
        w.view.tidy()
        self.settle()
        w.training.train_action.trigger()
        for _ in range(3000):
            self.settle(50)
            if not w.training.running:
                break
        w.resizeDocks([w.live_dock], [430], Qt.Orientation.Vertical)
        w.live_views.setCurrentWidget(w.live_views.view("boundary"))
        return self.grab()

    def evaluation(self) -> QPixmap:
        """After training: the test split's confusion matrix and worst samples."""
        w = self.window
        self._train("cnn_mnist", 4)
        done = []
        w.training.evaluated.connect(done.append)
        w.training.evaluate_action.trigger()
        for _ in range(1200):
            self.settle(50)
            if done:
                break
        w.resizeDocks([w.evaluation_dock], [430], Qt.Orientation.Vertical)
        return self.grab()

    def _template_view(self, template: str, epochs: int, tab: str, running_steps: int | None = None) -> QPixmap:
        """Train `template` and show the live view `tab`: while it runs (after `running_steps` steps) or, without
        running_steps, once the run has ended."""
        w = self.window
        w.build_training_views()
        curves = w.live_views.view("curves")
        wait = None if running_steps is None else (lambda: len(curves.raw_steps("loss")[0]) > running_steps)
        self._train(template, epochs, wait)
        w.resizeDocks([w.live_dock], [430], Qt.Orientation.Vertical)
        w.live_views.setCurrentWidget(w.live_views.view(tab))
        self.settle(400)
        picture = self.grab()
        if running_steps is not None:
            w.training.shutdown()
            self.settle()
        return picture

    def cifar_filters(self) -> QPixmap:
        """cnn_cifar on the 3×32×32 shapes while it trains: colour filters."""
        return self._template_view("cnn_cifar", 6, "filters", running_steps=150)

    def residual_features(self) -> QPixmap:
        """residual_block on digits while it trains: the feature maps of a layer for one sample."""
        return self._template_view("residual_block", 3, "features", running_steps=200)

    def autoencoder_reconstructions(self) -> QPixmap:
        """conv_autoencoder after training: inputs above their reconstructions."""
        return self._template_view("conv_autoencoder", 4, "reconstructions")

    def mlp_histograms(self) -> QPixmap:
        """mlp_mnist_128 after training: per-layer weight and gradient histograms and norms."""
        return self._template_view("mlp_mnist_128", 4, "histograms")

    def compare_runs(self) -> QPixmap:
        """Two runs of mlp_784_64_10 with different learning rates, the first overlaid on the second's curves."""
        w = self.window
        w.build_training_views()
        w.new_from_template("mlp_784_64_10")
        doc = w.document
        assert w._save_to(self.tmp / "compare.layerloom")  # noqa: SLF001 - a saved project keeps its runs
        finished: list[dict] = []
        w.training.run_finished.connect(finished.append)
        for lr in (0.0005, 0.005):
            doc.set_section("optimizer", {"type": "Adam", "params": {"lr": lr}})
            doc.set_section("training", {**(doc.project.training or {}), "epochs": 6})
            runs = len(finished)
            w.training.train_action.trigger()
            for _ in range(3000):
                self.settle(50)
                if len(finished) > runs:
                    break
        curves = w.live_views.view("curves")
        curves.fill_compare_menu()
        older = [a for a in curves.compare_menu.actions() if a.isCheckable()][-1]
        older.setChecked(True)
        w.resizeDocks([w.live_dock], [430], Qt.Orientation.Vertical)
        w.live_views.setCurrentWidget(curves)
        self.settle(400)
        return self.grab()


SHOTS: dict[str, Callable[[Shooter], QPixmap]] = {
    "start-page": Shooter.start_page,
    "template-open": Shooter.template_open,
    "error-badge": Shooter.error_badge,
    "palette-search": Shooter.palette_search,
    "dark-theme": Shooter.dark_theme,
    "build-from-empty": Shooter.build_from_empty,
    "training-live": Shooter.training_live,
    "training-filters": Shooter.training_filters,
    "decision-boundary": Shooter.decision_boundary,
    "evaluation": Shooter.evaluation,
    "cifar-filters": Shooter.cifar_filters,
    "residual-features": Shooter.residual_features,
    "autoencoder-reconstructions": Shooter.autoencoder_reconstructions,
    "mlp-histograms": Shooter.mlp_histograms,
    "compare-runs": Shooter.compare_runs,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the PNGs")
    parser.add_argument("--only", nargs="+", choices=list(SHOTS), metavar="NAME",
                        help=f"take only these ({', '.join(SHOTS)})")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="layerloom-screenshots-"))
    try:
        private_environment(tmp)
        app = QApplication.instance() or QApplication([sys.argv[0]])
        app.setApplicationName(APP)
        app.setOrganizationName(APP)
        app.setApplicationDisplayName(APP)
        shooter = Shooter(app, tmp, args.out.resolve())
        try:
            for name in args.only or SHOTS:
                path = shooter.save(name, SHOTS[name](shooter))
                shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                print(f"{shown}  {path.stat().st_size // 1024} KB")
        finally:
            shooter.window.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
