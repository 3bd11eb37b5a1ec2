"""The start page: one card per template with its name, description and size; cards and recent files open what
they show by mouse and keyboard; thumbnails draw the network; the light and dark themes are light and dark."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtTest import QTest

from engine.graph import Graph
from engine.shapes import analyze
from engine.templates import load_template, template_names
from gui.colors import CATEGORY_COLORS
from gui.start_page import StartPage, elide_lines, readable_title
from gui.theme import apply_theme, follow_system, is_dark, make_palette, system_scheme
from gui.thumbnail import canvas_color, graph_thumbnail


@pytest.fixture
def restore_theme(qapp):
    palette, style = qapp.palette(), qapp.style().name()
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)


@pytest.fixture
def page(qtbot):
    p = StartPage()
    qtbot.addWidget(p)
    p.resize(1280, 800)
    p.show()
    qtbot.waitExposed(p)
    return p


def test_one_card_per_template_with_its_title_description_and_parameter_count(page):
    assert [c.name for c in page.cards] == template_names()
    for card in page.cards:
        project = load_template(card.name)
        total = analyze(project.graph).total_params
        assert card.title_label.text() == readable_title(card.name)
        assert card.description() == project.description
        shown = card.description_label.text()
        assert shown and (shown == project.description or shown.endswith("…"))
        assert project.description.startswith(shown.rstrip("…").split()[0])
        assert card.params_label.text() == f"{total:,} parameters"
        assert card.layers_label.text() == f"{len(project.graph)} layers"
    mlp = page.gallery.card("mlp_mnist_128")
    assert mlp.params_label.text() == "101,770 parameters"


def test_titles_read_as_names():
    assert readable_title("cnn_mnist") == "CNN MNIST"
    assert readable_title("mlp_784_64_10") == "MLP 784-64-10"
    assert readable_title("gru_two_branch") == "GRU two branch"
    assert readable_title("linear_regression") == "Linear regression"


def test_a_long_description_is_cut_to_its_lines_with_an_ellipsis(page):
    font = page.font()
    text = "word " * 200
    cut = elide_lines(text, font, 200, 3)
    assert cut.endswith("…") and len(cut) < len(text)
    assert elide_lines("short", font, 200, 3) == "short"


def test_clicking_a_card_or_pressing_enter_on_it_chooses_that_template(page, qtbot):
    card = page.gallery.card("residual_block")
    with qtbot.waitSignal(page.template_chosen, timeout=1000) as blocker:
        QTest.mouseClick(card, Qt.MouseButton.LeftButton)
    assert blocker.args == ["residual_block"]
    other = page.gallery.card("cnn_mnist")
    other.setFocus()
    with qtbot.waitSignal(page.template_chosen, timeout=1000) as blocker:
        QTest.keyClick(other, Qt.Key.Key_Return)
    assert blocker.args == ["cnn_mnist"]


def test_arrow_keys_move_between_cards(page, qtbot):
    first, second = page.cards[0], page.cards[1]
    first.setFocus()
    qtbot.waitUntil(first.hasFocus, timeout=1000)
    QTest.keyClick(first, Qt.Key.Key_Right)
    assert second.hasFocus()
    QTest.keyClick(second, Qt.Key.Key_Down)
    assert page.cards[1 + page.gallery.grid.columns].hasFocus()


def test_the_gallery_reflows_with_the_window_width(page, qtbot):
    page.resize(1600, 800)
    qtbot.waitUntil(lambda: page.gallery.grid.columns >= 4, timeout=2000)
    wide = page.gallery.grid.columns
    page.resize(1000, 800)
    qtbot.waitUntil(lambda: 1 < page.gallery.grid.columns < wide, timeout=2000)
    cards = page.cards
    assert cards[0].geometry().top() == cards[1].geometry().top()  # a row still holds several cards
    assert not cards[0].geometry().intersects(cards[1].geometry())


def test_recent_files_show_name_and_folder_mark_the_missing_and_open_on_click(page, qtbot, tmp_path):
    present = tmp_path / "work" / "digits.layerloom"
    present.parent.mkdir()
    present.write_text("{}")
    missing = tmp_path / "gone.layerloom"
    page.set_recent([str(present), str(missing)])
    rows = page.recent.rows
    assert [r.path for r in rows] == [str(present), str(missing)]
    qtbot.waitUntil(lambda: rows[0].name_label.text() == "digits.layerloom", timeout=1000)  # elided to its width
    assert rows[0].folder_label.text().endswith("work")
    assert "(missing)" in rows[1].name_label.text() and not rows[1].isEnabled()
    assert "(missing)" not in rows[0].name_label.text() and rows[0].isEnabled()
    assert not page.recent.empty_label.isVisible()
    opened: list[str] = []
    page.open_requested.connect(opened.append)
    QTest.mouseClick(rows[1], Qt.MouseButton.LeftButton)
    assert opened == []
    with qtbot.waitSignal(page.open_requested, timeout=1000) as blocker:
        QTest.mouseClick(rows[0], Qt.MouseButton.LeftButton)
    assert blocker.args == [str(present)]
    page.set_recent([])
    assert page.recent.rows == [] and page.recent.empty_label.isVisible()


def test_new_and_open_buttons_emit_their_signals(page, qtbot):
    with qtbot.waitSignal(page.new_empty, timeout=1000):
        QTest.mouseClick(page.new_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(page.open_other, timeout=1000):
        QTest.mouseClick(page.open_button, Qt.MouseButton.LeftButton)


def _colors(image: QImage) -> set[int]:
    return {image.pixel(x, y) for x in range(0, image.width(), 2) for y in range(0, image.height(), 2)}


def test_thumbnails_have_the_size_asked_for_and_draw_the_network(qapp):
    palette = make_palette("light")
    size = QSize(220, 160)
    a = graph_thumbnail(load_template("cnn_mnist").graph, size, palette)
    b = graph_thumbnail(load_template("gru_two_branch").graph, size, palette)
    for pixmap in (a, b):
        assert not pixmap.isNull() and pixmap.size() == size
    image_a, image_b = a.toImage(), b.toImage()
    assert image_a != image_b
    background = canvas_color(palette).rgb()
    assert image_a.pixelColor(3, size.height() // 2).rgb() == background  # the margin is plain canvas
    colors = {QColor(c).rgb() for c in _colors(image_a)}
    assert len(colors - {background}) > 10
    assert QColor(CATEGORY_COLORS["Convolution"]).rgb() in colors  # boxes take their category's colour


def test_thumbnails_of_odd_graphs_still_draw(qapp):
    size = QSize(120, 90)
    empty = graph_thumbnail(Graph(), size)
    one = Graph()
    one.add_node("Input", {"shape": [3]})
    stacked = Graph()
    first = stacked.add_node("Input", {"shape": [3]})
    second = stacked.add_node("Linear", {"out_features": 2})
    stacked.connect(first, second)  # both at (0, 0)
    hidpi = graph_thumbnail(one, size, device_pixel_ratio=2.0)
    assert hidpi.size() == size * 2 and hidpi.deviceIndependentSize().toSize() == size
    blank = _colors(empty.toImage())
    for graph in (one, stacked):
        drawn = _colors(graph_thumbnail(graph, size).toImage())
        assert len(drawn) > len(blank)


def test_the_page_builds_quickly(qtbot):
    start = time.perf_counter()
    page = StartPage()
    qtbot.addWidget(page)
    page.resize(1280, 800)
    page.grab()  # lays out and paints every visible card and thumbnail
    # Measured about 70 ms; the bound leaves room for a loaded test machine.
    assert time.perf_counter() - start < 1.0


def test_dark_and_light_themes(qapp, restore_theme):
    assert apply_theme(qapp, "dark") == "dark"
    assert is_dark(qapp.palette()) and qapp.palette().color(QPalette.ColorRole.Window).lightness() < 60
    assert qapp.style().name().lower() == "fusion"
    assert apply_theme(qapp, "light") == "light"
    assert not is_dark(qapp.palette()) and qapp.palette().color(QPalette.ColorRole.Window).lightness() > 200
    disabled = qapp.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
    assert disabled != qapp.palette().color(QPalette.ColorRole.Text)
    assert apply_theme(qapp, "system") in ("light", "dark")
    with pytest.raises(ValueError):
        apply_theme(qapp, "sepia")


def test_system_mode_follows_a_change_of_the_os_scheme_and_a_chosen_mode_does_not(qapp, restore_theme):
    follow_system(qapp)
    follow_system(qapp)  # connects once
    system = system_scheme()
    other = make_palette("light" if system == "dark" else "dark")
    apply_theme(qapp, "system")
    qapp.setPalette(other)  # as the palette stands just before the OS switches
    qapp.styleHints().colorSchemeChanged.emit(qapp.styleHints().colorScheme())
    assert is_dark(qapp.palette()) == (system == "dark")
    chosen = "light" if system == "dark" else "dark"
    apply_theme(qapp, chosen)
    qapp.styleHints().colorSchemeChanged.emit(qapp.styleHints().colorScheme())
    assert is_dark(qapp.palette()) == (chosen == "dark")


def test_a_theme_change_repaints_the_page_in_the_new_colours(page, qapp, restore_theme, qtbot):
    apply_theme(qapp, "light")
    card = page.cards[0]
    qtbot.waitUntil(lambda: not is_dark(card.palette()), timeout=1000)
    light = card.grab().toImage().pixelColor(card.width() // 2, card.height() - 20)
    apply_theme(qapp, "dark")
    qtbot.waitUntil(lambda: is_dark(card.palette()), timeout=1000)
    dark = card.grab().toImage().pixelColor(card.width() // 2, card.height() - 20)
    assert light.lightness() > 200 and dark.lightness() < 80
