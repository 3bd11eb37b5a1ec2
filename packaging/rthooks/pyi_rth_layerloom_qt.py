"""Run-time hook of the built program, in place of PyInstaller's pyi_rth_pyside6 (dropped in packaging/bundle.py).

PyInstaller's hook imports PySide6.QtCore at every start, which loads Qt and its 30 MB ICU data even for the
headless commands (`LayerLoom train ...`), which must not load Qt. This one only says where Qt's plugins are; the
qt.conf that makes Qt relocatable is registered by PySide6 itself when QtCore is first imported.
"""
import os
import sys

_qt = os.path.join(sys._MEIPASS, "PySide6", "Qt")  # noqa: SLF001 - PyInstaller's bundle folder
os.environ["QT_PLUGIN_PATH"] = os.path.join(_qt, "plugins")
os.environ["QML2_IMPORT_PATH"] = os.path.join(_qt, "qml")
del _qt
