# PyInstaller hook for LayerLoom's window package (found through hookspath in packaging/layerloom.spec).
# The sources go in beside the bytecode, so tracebacks from the built program show the lines of code.
module_collection_mode = "pyz+py"
