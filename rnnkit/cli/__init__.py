"""The `rnnkit` command: one sub-command per module in this package, each with `add_parser`.

User errors are reported here, in one place: any exception in `USER_ERRORS` raised by a
command (bad settings, missing or malformed files, refused runs, failed checkpoint checks,
a diverged training) ends the command with one line `rnnkit CMD: error: MESSAGE` on stderr
and exit code 2; `rnnkit --debug ...` shows the traceback instead. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Any, NoReturn

__all__ = ["main", "build_parser", "UserError", "USER_ERRORS", "OneLineParser"]

# Each module named here defines `add_parser(subparsers) -> None`; the parser it adds sets
# `func=<callable(args) -> int>` as its default.
_COMMANDS = ["demo", "train", "sample", "bench", "tune", "build", "esn", "translate", "evaluate",
             "lab", "classify", "predict", "export", "generate"]


class UserError(ValueError):
    """A command-line mistake a command detects itself (a bad combination of arguments)."""


# ValueError covers the library's own user-facing errors: bad configs, malformed data files
# (UnicodeDecodeError, json errors), CheckpointError, RunExistsError, RunInUseError,
# ResumeMismatchError, TrainingDivergedError. OSError covers missing files, folders where
# files were expected and permissions; ImportError a missing optional dependency.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, ImportError)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`PROG: error: ... (see PROG --help)`)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rnnkit", description="Recurrent neural networks on PyTorch."
    )
    parser.add_argument("--debug", action="store_true",
                        help="show a traceback for errors instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in _COMMANDS:
        importlib.import_module(f"rnnkit.cli.{name}").add_parser(sub)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    parts = [getattr(args, "command", None), getattr(args, "task", None),
             getattr(args, "experiment", None)]
    return " ".join(["rnnkit", *[p for p in parts if isinstance(p, str)]])


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"rnnkit: warning: {_one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run `rnnkit ARGS`; returns the exit code (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args) or 0)
        except USER_ERRORS as err:
            if args.debug:
                raise
            print(f"{_command_name(args)}: error: {_one_line(err) or type(err).__name__}",
                  file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            if args.debug:
                raise
            print(f"{_command_name(args)}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
