# PyInstaller hook for onnxscript (found through hookspath in packaging/layerloom.spec).
# onnxscript's @script decorator reads the source of the functions it compiles (the ATen operators of
# torch.onnx's exporter, such as Rank), so the sources must be in the bundle; without them torch.onnx.export
# falls back to the older TorchScript-based exporter.
module_collection_mode = "pyz+py"
