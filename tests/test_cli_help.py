"""Every option of every command explains itself in --help: a sentence, and its default when it has one."""
from __future__ import annotations

import argparse

import pytest

from nanodet_mcu import cli


def _actions(command: str) -> list[argparse.Action]:
    parser = cli._parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [a for a in sub.choices[command]._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_option_has_help_with_its_default(command):
    for action in _actions(command):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help.split()) >= 3, f"{command} {name}: no help sentence"
        takes_value = action.nargs != 0
        if action.option_strings and takes_value and not action.required:
            assert "default" in action.help or "required" in action.help, f"{command} {name}: default not said"
