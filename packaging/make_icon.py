"""Draws LayerLoom's icon, packaging/layerloom.png (256×256, transparent corners), with Qt's QPainter.

    .venv/bin/python packaging/make_icon.py [--size 256] [--out packaging/layerloom.png]

The picture: a rounded tile in the app's blue, three columns of layer nodes (3, 4, 2) joined by the threads of a
loom, the way the canvas draws a network with data flowing downwards. Runs offscreen (no display needed).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ICON = HERE / "layerloom.png"

# rows of nodes from top (input) to bottom (output)
ROWS = (3, 4, 2)
BACKGROUND = ("#2f6fd6", "#1b3f8f")  # top → bottom
THREAD = "#cfe0ff"
NODE_FILL = ("#ffffff", "#ffd166", "#7ee0b5")  # input, hidden, output
NODE_EDGE = "#0f2a63"


def render(size: int = 256):
    """The icon as a QImage (ARGB32, premultiplied) of `size`×`size` pixels."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QBrush, QColor, QGuiApplication, QImage, QLinearGradient, QPainter, QPainterPath, QPen

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts and pens need one
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 256.0

    # the tile
    margin = 12 * s
    tile = QRectF(margin, margin, size - 2 * margin, size - 2 * margin)
    grad = QLinearGradient(tile.topLeft(), tile.bottomLeft())
    grad.setColorAt(0.0, QColor(BACKGROUND[0]))
    grad.setColorAt(1.0, QColor(BACKGROUND[1]))
    path = QPainterPath()
    path.addRoundedRect(tile, 44 * s, 44 * s)
    p.fillPath(path, QBrush(grad))

    # node centres, rows spread over the tile
    top, bottom = tile.top() + 52 * s, tile.bottom() - 52 * s
    left, right = tile.left() + 22 * s, tile.right() - 22 * s
    centres: list[list[QPointF]] = []
    for r, n in enumerate(ROWS):
        y = top + (bottom - top) * r / (len(ROWS) - 1)
        xs = [left + (right - left) * (i + 0.5) / n for i in range(n)]
        centres.append([QPointF(x, y) for x in xs])

    # threads: every node to every node in the next row, as gentle S-curves (the weave)
    pen = QPen(QColor(THREAD), 5 * s)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    thread = QColor(THREAD)
    thread.setAlphaF(0.75)
    pen.setColor(thread)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    for upper, lower in zip(centres, centres[1:]):
        for a in upper:
            for b in lower:
                mid = (a.y() + b.y()) / 2
                curve = QPainterPath(a)
                curve.cubicTo(QPointF(a.x(), mid), QPointF(b.x(), mid), b)
                p.drawPath(curve)

    # nodes
    radius = 16 * s
    p.setPen(QPen(QColor(NODE_EDGE), 4 * s))
    for r, row in enumerate(centres):
        p.setBrush(QColor(NODE_FILL[min(r, len(NODE_FILL) - 1)]))
        for c in row:
            p.drawEllipse(c, radius, radius)
    p.end()
    return img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Draw LayerLoom's icon as a PNG.")
    ap.add_argument("--size", type=int, default=256, help="side in pixels (default 256)")
    ap.add_argument("--out", default=str(ICON), help=f"the PNG to write (default {ICON})")
    args = ap.parse_args(argv)
    if args.size < 16:
        print("make_icon: --size must be at least 16 pixels", file=sys.stderr)
        return 2
    img = render(args.size)
    if not img.save(args.out, "PNG"):
        print(f"make_icon: could not write {args.out}; check that its folder exists and is writable",
              file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({args.size}×{args.size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
