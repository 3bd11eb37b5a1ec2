"""The `layerloom` command: a subcommand (summary, train, export, ...) runs headless without loading Qt;
no argument or a project file opens the window."""
from __future__ import annotations

import argparse
import sys


def subcommands() -> set[str]:
    """The headless commands, as engine/cli.py declares them."""
    from engine.cli import build_parser
    for action in build_parser()._actions:  # noqa: SLF001 - argparse keeps its subcommands only here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return set(action.choices)
    return set()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in subcommands() or argv[0] in ("-h", "--help")):
        from engine.cli import main as cli_main
        return cli_main(argv)
    from gui.app import main as app_main
    return app_main(argv)


if __name__ == "__main__":
    sys.exit(main())
