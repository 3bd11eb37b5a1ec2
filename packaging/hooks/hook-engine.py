# PyInstaller hook for LayerLoom's engine package (found through hookspath in packaging/layerloom.spec).
# The sources go in beside the bytecode, so tracebacks from the built program show the lines of code, and
# torch.jit / torch.export can read a module's source when they want it.
module_collection_mode = "pyz+py"
