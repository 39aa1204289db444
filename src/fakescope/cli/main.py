"""The ``fakescope`` command line: a thin layer over the Python API, one dispatch table.

Each command group lives in its own module and registers its sub-commands with ``set_defaults(run=...)``; nothing
heavy is imported until a command runs. Exit codes: 0 ok, 1 some files failed, 2 usage or input error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import adversarial, info, scale, scan, serve, studies, train

# the sub-commands, in the order ``fakescope --help`` lists them
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    train.add_train, scan.add_scan, studies.add_report, studies.add_study, serve.add_serve, scan.add_demo,
    studies.add_evaluate, studies.add_reproduce, studies.add_explain, adversarial.add_attack,
    adversarial.add_adversarial_benchmark, adversarial.add_guard, adversarial.add_harden, train.add_ensemble,
    info.add_models, info.add_info,
    scale.add_pack, scale.add_merge,
)


class HelpFormatter(argparse.HelpFormatter):
    """Each option's help ends with its default, unless it has none (None, an empty list, a switch) or the help
    already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not text or "default" in text or not action.option_strings or default is argparse.SUPPRESS
                or default is None or isinstance(default, bool) or default == []):
            return text
        return text + " (default %(default)s)"


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with ``HelpFormatter`` (sub-commands are made of this class too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fakescope", description="Detect AI-generated and adversarial images.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; input errors (bad data, a missing file, an existing run) print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"fakescope {args.command}: error: {e}", file=sys.stderr)
        return 2
