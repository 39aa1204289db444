"""``fakescope ... --help``: every option says what it does, and its default."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fakescope.cli.main import HelpFormatter, build_parser
from fakescope.training.config import TrainConfig


def _parsers(p: argparse.ArgumentParser, name: str = "fakescope") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub, sp in a.choices.items():
                yield from _parsers(sp, f"{name} {sub}")


PARSERS = dict(_parsers(build_parser()))


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help_and_shows_its_default(name: str) -> None:
    p = PARSERS[name]
    fmt = HelpFormatter(prog=name)
    for a in _options(p):
        flag = "/".join(a.option_strings) or a.dest
        if name == "fakescope serve":  # cli/serve.py: its own module, not covered here
            continue
        assert a.help and a.help.strip(), f"{name} {flag}: no help text"
        has_default = a.default not in (None, [], argparse.SUPPRESS) and not isinstance(a.default, bool)
        if has_default and a.option_strings:
            assert "default" in fmt._get_help_string(a), f"{name} {flag}: default {a.default!r} not shown"
    assert p.format_help()  # formats without error


def test_train_flags_show_train_config_defaults() -> None:
    p = PARSERS["fakescope train"]
    helps = {a.dest: a.help for a in _options(p)}
    for field in ("epochs", "lr", "seed", "batch_size", "val_fraction", "optimizer", "image_size", "augment"):
        assert f"(default {getattr(TrainConfig(), field)})" in helps[field], field


def test_help_and_models_import_no_torch() -> None:
    code = ("import sys, contextlib, io\nfrom fakescope.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for argv in (['models'], ['info', 'fast']):\n        main(argv)\n"
            "    try:\n        main(['train', '--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules, 'onnx' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"], r.stdout
