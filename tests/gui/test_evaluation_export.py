"""The evaluation view on results computed by real small torch models (the confusion matrix against counts made by
hand, a cell's samples, the worst gallery's labels, the regression scatter, reconstructions) and the export dialog
on a real template (ONNX checked against PyTorch on its worker thread, a bad path said in words, trained weights,
the PyTorch code on the clipboard)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from engine.export import make_model, write_safetensors
from engine.templates import load_template
from gui.colors import ERROR_COLOR
from gui.evaluation_views import EvaluationView, ImageGallery
from gui.export_dialog import ExportDialog, default_file_name, with_format_suffix

EXPORT_WAIT = 60000


# ---- results as engine.evaluate gives them, from real small computations -----------------------------------------
def classification_result(n: int = 90, c: int = 4, images: bool = True, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 6, 6, generator=gen) if images else torch.randn(n, 5, generator=gen)
    y = torch.randint(0, c, (n,), generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), c))
    with torch.no_grad():
        logits = model(x) * 3
    probs = logits.softmax(1)
    confidence, pred = probs.max(1)
    losses = F.cross_entropy(logits, y, reduction="none")
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (y.numpy(), pred.numpy()), 1)
    return {"split": "test", "n": n, "task": "classification",
            "metrics": {"loss": float(losses.mean()), "acc": float((pred == y).float().mean())},
            "classes": [f"c{i}" for i in range(c)], "confusion": confusion, "y_true": y.numpy(),
            "y_pred": pred.numpy(), "confidence": confidence.numpy(), "losses": losses.numpy(),
            "worst": np.argsort(-losses.numpy(), kind="stable")[:64], "x": x.numpy(), "is_image": images,
            "reconstructions": None}


def regression_result(n: int = 50) -> dict:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=gen)
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        pred = model(x)
    losses = ((pred - y) ** 2).mean(1)
    mae = float((pred - y).abs().mean())
    r2 = float(1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    return {"split": "val", "n": n, "task": "regression",
            "metrics": {"loss": float(losses.mean()), "mae": mae, "r2": r2},
            "classes": [], "confusion": None, "y_true": y.numpy(), "y_pred": pred.numpy(), "confidence": None,
            "losses": losses.numpy(), "worst": np.argsort(-losses.numpy())[:64], "x": x.numpy(), "is_image": False,
            "reconstructions": None}


def reconstruction_result(n: int = 30) -> dict:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 12), torch.nn.ReLU(), torch.nn.Linear(12, 64),
                                torch.nn.Sigmoid(), torch.nn.Unflatten(1, (1, 8, 8)))
    with torch.no_grad():
        out = model(x)
    losses = ((out - x) ** 2).flatten(1).mean(1)
    return {"split": "test", "n": n, "task": "reconstruction", "metrics": {"loss": float(losses.mean())},
            "classes": [], "confusion": None, "y_true": None, "y_pred": None, "confidence": None,
            "losses": losses.numpy(), "worst": np.argsort(-losses.numpy())[:64], "x": x.numpy(), "is_image": True,
            "reconstructions": out[:16].numpy()}


@pytest.fixture
def view(qtbot):
    w = EvaluationView()
    qtbot.addWidget(w)
    w.resize(640, 900)
    w.show()
    return w


# ---- evaluation ---------------------------------------------------------------------------------------------------
def test_confusion_matrix_counts_are_those_counted_by_hand(view):
    r = classification_result()
    view.show_result(r)
    model = view.confusion_model
    c = len(r["classes"])
    assert model.rowCount() == model.columnCount() == c
    for i in range(c):
        for j in range(c):
            by_hand = sum(1 for t, p in zip(r["y_true"], r["y_pred"]) if t == i and p == j)
            assert model.count(i, j) == by_hand
            assert model.data(model.index(i, j)) == str(by_hand)
    assert [model.headerData(i, Qt.Orientation.Horizontal) for i in range(c)] == r["classes"]
    assert "accuracy" in view.metrics.text() and f"{r['metrics']['acc']:.1%}" in view.metrics.text()
    assert "90 samples" in view.metrics.text() and "test" in view.title.text()


def test_clicking_a_cell_shows_its_samples(view, qtbot):
    r = classification_result()
    view.show_result(r)
    i, j = next((i, j) for i in range(4) for j in range(4) if i != j and r["confusion"][i, j] > 0)
    rect = view.confusion.visualRect(view.confusion_model.index(i, j))
    qtbot.mouseClick(view.confusion.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    expected = [k for k in range(r["n"]) if r["y_true"][k] == i and r["y_pred"][k] == j]
    assert view.cell_indices() == expected
    assert view.cell_gallery.isVisibleTo(view) and view.cell_gallery.count() == len(expected)
    assert f"TRUE C{i}, PREDICTED C{j}" in view.cell_title.text()
    assert all(m == ERROR_COLOR for m in view.cell_gallery.marks())
    with qtbot.waitSignal(view.sample_selected) as blocker:
        qtbot.mouseClick(view.cell_gallery, Qt.MouseButton.LeftButton, pos=view.cell_gallery.item_rect(0).center())
    assert blocker.args == [expected[0]]


def test_tabular_cells_and_worst_samples_are_rows(view, qtbot):
    r = classification_result(images=False)
    view.show_result(r)
    view.select_cell(1, 1)
    expected = [k for k in range(r["n"]) if r["y_true"][k] == 1 and r["y_pred"][k] == 1]
    assert not view.cell_gallery.isVisibleTo(view) and view.cell_table.isVisibleTo(view)
    assert view.cell_indices() == expected
    table = view.worst_table
    assert table.rowCount() == min(64, r["n"])
    first = table.row_texts(0)
    k = int(r["worst"][0])
    assert first[:3] == [str(k), f"c{r['y_true'][k]}", f"c{r['y_pred'][k]}"]
    with qtbot.waitSignal(view.sample_selected) as blocker:
        table.cellClicked.emit(2, 1)
    assert blocker.args == [int(r["worst"][2])]


def test_worst_gallery_labels_say_true_predicted_and_confidence(view):
    r = classification_result()
    view.show_result(r)
    g = view.worst_gallery
    assert g.count() == min(64, r["n"]) and g.indices() == [int(i) for i in r["worst"]]
    for pos, k in enumerate(r["worst"][:10]):
        t, p, conf = r["y_true"][k], r["y_pred"][k], r["confidence"][k]
        expected = f"c{t} ✓\n{conf:.0%}" if t == p else f"c{t} → c{p}\n{conf:.0%}"
        assert g.captions()[pos] == expected
        assert g.marks()[pos] == (None if t == p else ERROR_COLOR)
    assert "WORST CLASSIFIED" in view.worst_title.text()


def test_regression_scatter_holds_predicted_against_true(view):
    r = regression_result()
    view.show_result(r)
    x, y = view.scatter_data()
    np.testing.assert_allclose(x, r["y_true"].ravel())
    np.testing.assert_allclose(y, r["y_pred"].ravel())
    assert view.scatter_host.isVisibleTo(view) and not view.confusion.isVisibleTo(view)
    assert view.plot is not None and len(view.plot.listDataItems()) >= 1
    assert "R²" in view.metrics.text() and f"{r['metrics']['r2']:.3f}" in view.metrics.text()
    assert "LARGEST ERRORS" in view.worst_title.text() and view.worst_table.rowCount() == r["n"]


def test_reconstructions_sit_beside_their_inputs(view):
    r = reconstruction_result()
    view.show_result(r)
    g = view.recon_gallery
    assert g.isVisibleTo(view) and g.count() == 16
    assert g.captions()[0] == f"#0\nloss {r['losses'][0]:.3g}"
    assert g.item_rect(0).width() > 2 * 56  # two images per cell
    assert view.worst_gallery.count() == r["n"]
    assert not view.confusion.isVisibleTo(view) and not view.scatter_host.isVisibleTo(view)


def test_gallery_wraps_to_its_width(qtbot):
    g = ImageGallery(cell=40)
    qtbot.addWidget(g)
    g.resize(300, 10)
    g.set_samples(np.random.default_rng(0).random((20, 1, 8, 8)), [str(i) for i in range(20)])
    cols = g._columns(300)
    assert g.heightForWidth(300) == -(-20 // cols) * (g._cell_size().height() + 6) - 6
    assert g.position_at(g.item_rect(cols).center()) == cols


# ---- export -------------------------------------------------------------------------------------------------------
@pytest.fixture
def project(qapp):
    return load_template("cnn_mnist")


def test_exporting_to_onnx_reports_the_check(qtbot, project, tmp_path):
    dlg = ExportDialog(project, None, tmp_path)
    qtbot.addWidget(dlg)
    assert "Untrained" in dlg.weights_label.text()
    assert dlg.output_path() == str(tmp_path / "cnn_mnist.onnx")
    with qtbot.waitSignal(dlg.export_done, timeout=EXPORT_WAIT) as blocker:
        assert dlg.export_now("onnx", tmp_path / "net.onnx")
        assert dlg.busy and not dlg.export_button.isEnabled() and not dlg.progress.isHidden()
    result = blocker.args[0]
    assert result["ok"] and result["error"] == ""
    assert result["report"]["check_passed"] and result["report"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "net.onnx").is_file()
    text = dlg.result_text()
    assert "Exported and checked" in text and "✓ yes" in text and "max difference" in text and "untrained" in text
    assert not dlg.busy and dlg.export_button.isEnabled() and dlg.progress.isHidden()


def test_a_bad_path_is_said_in_words(qtbot, project, tmp_path):
    dlg = ExportDialog(project, None, tmp_path)
    qtbot.addWidget(dlg)
    with qtbot.waitSignal(dlg.export_done, timeout=EXPORT_WAIT) as blocker:
        dlg.export_now("onnx", tmp_path / "no" / "such" / "net.onnx")
    result = blocker.args[0]
    assert not result["ok"] and "does not exist" in result["error"]
    assert "The export failed" in dlg.result_text() and "does not exist" in dlg.result_text()
    assert ERROR_COLOR in dlg.result_label.text()


def test_trained_weights_are_named_and_exported(qtbot, project, tmp_path):
    weights = tmp_path / "final.safetensors"
    write_safetensors(make_model(project.graph).state_dict(), weights)
    dlg = ExportDialog(project, "final.safetensors", tmp_path)  # relative to the project's folder
    qtbot.addWidget(dlg)
    assert "final.safetensors" in dlg.weights_label.text() and "Untrained" not in dlg.weights_label.text()
    with qtbot.waitSignal(dlg.export_done, timeout=EXPORT_WAIT) as blocker:
        dlg.export_now("safetensors")
    result = blocker.args[0]
    assert result["ok"] and result["path"] == str(tmp_path / "cnn_mnist.safetensors")
    assert "untrained" not in " ".join(result["lines"])


def test_format_choice_changes_the_suffix(qtbot, project, tmp_path):
    dlg = ExportDialog(project, None, tmp_path)
    qtbot.addWidget(dlg)
    dlg.set_format("pt2")
    assert dlg.output_path().endswith("cnn_mnist.pt2") and dlg.export_button.text() == "Export PyTorch program"
    dlg.path_edit.setText(str(tmp_path / "mine.onnx"))
    dlg._on_path_edited("")
    dlg.set_format("int8")
    assert dlg.output_path() == str(tmp_path / "mine.int8.onnx")
    dlg.set_format("python")
    assert dlg.output_path() == str(tmp_path / "mine.py")
    assert with_format_suffix("a/b.py", "int8") == "a/b.int8.ts"
    assert default_file_name("my net", "torchscript") == "my_net.ts"


def test_copy_pytorch_code_fills_the_clipboard(qtbot, project, tmp_path):
    dlg = ExportDialog(project, None, tmp_path)
    qtbot.addWidget(dlg)
    QGuiApplication.clipboard().setText("")
    with qtbot.waitSignal(dlg.code_copied, timeout=EXPORT_WAIT) as blocker:
        dlg.copy_code()
    code = QGuiApplication.clipboard().text()
    assert code == blocker.args[0]
    assert "class" in code and "nn.Module" in code and "def forward" in code
    assert "Copied" in dlg.status.text()


def test_shows_engine_evaluate_on_flattened_digits(view):
    from engine.evaluate import evaluate

    project = load_template("mlp_784_64_10")  # Input (784,): the digits reach the network flattened
    r = evaluate(project, make_model(project.graph).state_dict(), "test")
    view.show_result(r)
    c = len(r["classes"])
    assert [[view.confusion_model.count(i, j) for j in range(c)] for i in range(c)] == [
        [int(sum((r["y_true"] == i) & (r["y_pred"] == j))) for j in range(c)] for i in range(c)]
    assert view.worst_gallery.isVisibleTo(view) and view.worst_gallery.count() == 64  # folded back into images
    assert not view.worst_table.isVisibleTo(view)
