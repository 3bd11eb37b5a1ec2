"""LayerLoom's desktop window (PySide6): views and controllers over the engine. Arrives with the editor issue."""
