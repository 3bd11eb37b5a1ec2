"""The frozen program's entry point (PyInstaller runs this file as `LayerLoom`).

`LayerLoom` is `layerloom` (gui.launcher:main): a subcommand runs headless, anything else opens the window. The
frozen program has no separate Python interpreter, yet two features start one through `sys.executable`:

* `layerloom train --nproc N` runs `sys.executable -m torch.distributed.run ... -m engine.cli ...`, and torchrun
  starts each worker as `sys.executable -u -m engine.cli ...`;
* `layerloom export --format python` checks the written script with `sys.executable -I -B runner.py ...`.

So when the first argument is a Python interpreter option (`-m`, `-I`, `-B`, `-u`, ... never a LayerLoom
command, file or Qt option), this file behaves like `python`: it runs the module or script with runpy, with
`sys.argv` and `sys.path` set the way the interpreter would set them. Only imports from the standard library
happen before that decision, so the window still shows before torch loads.
"""
from __future__ import annotations

import multiprocessing
import os
import runpy
import sys

# interpreter flags that take no value: what each one changes here (most need nothing in a frozen program)
FLAGS = {"-I", "-B", "-u", "-E", "-s", "-S", "-P", "-O", "-OO", "-q", "-b", "-bb", "-d", "-v"}


class PythonCall:
    """A parsed `python [flags] (-m MODULE | SCRIPT) [ARGS...]` command line."""

    def __init__(self, flags: list[str], module: str | None, script: str | None, args: list[str]):
        self.flags, self.module, self.script, self.args = flags, module, script, args

    def __repr__(self) -> str:
        return f"PythonCall(flags={self.flags}, module={self.module!r}, script={self.script!r}, args={self.args})"


def _combined_flags(arg: str) -> bool:
    """-IB and the like: several value-less flags after one dash."""
    return len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and all(f"-{c}" in FLAGS for c in arg[1:])


def _interpreter_option(arg: str) -> bool:
    """Whether `arg` starts a Python command line (no LayerLoom command, file or Qt option looks like this)."""
    return arg in FLAGS or arg.startswith(("-m", "-c")) or _combined_flags(arg)


def parse_python_call(argv: list[str]) -> PythonCall | None:
    """The Python command line in `argv` (the arguments after the program's name), or None when it is a LayerLoom
    command line. Raises ValueError for an interpreter option this program cannot honour (such as -c)."""
    if not argv or not _interpreter_option(argv[0]):
        return None
    flags: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-m":
            if i + 1 >= len(argv):
                raise ValueError("-m needs a module name after it, e.g. -m engine.cli")
            return PythonCall(flags, argv[i + 1], None, argv[i + 2:])
        if a.startswith("-m") and len(a) > 2:  # -mengine.cli
            return PythonCall(flags, a[2:], None, argv[i + 1:])
        if a in FLAGS:
            flags.append(a)
        elif _combined_flags(a):
            flags += [f"-{c}" for c in a[1:]]  # combined flags such as -IB
        elif a == "-c" or a.startswith("-c"):
            raise ValueError("LayerLoom's frozen program cannot run code given with -c; write it to a .py file and "
                             "pass the file instead")
        elif a.startswith("-"):
            raise ValueError(f"LayerLoom's frozen program does not understand the Python option {a}; it accepts "
                             f"{', '.join(sorted(FLAGS))}, -m MODULE or a script")
        else:
            return PythonCall(flags, None, a, argv[i + 1:])
        i += 1
    raise ValueError("a Python command line needs -m MODULE or a script after its options")


def run_python(call: PythonCall) -> int:
    """Runs the module or script of `call` as __main__ in this process; its exit status."""
    isolated = "-I" in call.flags or "-P" in call.flags
    if "-B" in call.flags:
        sys.dont_write_bytecode = True
    if "-u" in call.flags:
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(write_through=True)
    try:
        if call.module is not None:
            if not isolated:
                sys.path.insert(0, os.getcwd())
            sys.argv = [call.module, *call.args]  # runpy puts the module's file name in argv[0]
            runpy.run_module(call.module, run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(call.script)
            if not os.path.isfile(script):
                print(f"LayerLoom: can't open file {call.script!r}: there is no such file", file=sys.stderr)
                return 2
            if not isolated:
                sys.path.insert(0, os.path.dirname(script))
            sys.argv = [call.script, *call.args]
            runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        if e.code is None:
            return 0
        if isinstance(e.code, int):
            return e.code
        print(e.code, file=sys.stderr)
        return 1
    return 0


def main() -> int:
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    try:
        call = parse_python_call(argv)
    except ValueError as e:
        print(f"LayerLoom: {e}", file=sys.stderr)
        return 2
    if call is not None:
        return run_python(call)
    from gui.launcher import main as launcher_main
    return launcher_main(argv)


if __name__ == "__main__":
    sys.exit(main())
