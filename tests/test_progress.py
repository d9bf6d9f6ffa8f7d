"""Progress of long steps: log lines when stderr is not a terminal, nothing when quiet."""
from __future__ import annotations

import io

import pytest

from nanodet_mcu.progress import QUIET, Steps


def test_log_lines_when_not_a_terminal():
    out = io.StringIO()
    steps = Steps("convert", stream=out, every_s=0.0)
    with steps.step("refining", total=3) as step:
        for _ in range(3):
            step.advance()
    with steps.step("quantising"):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "convert: refining (3 items)..."
    assert lines[1].startswith("convert: refining 1/3 (") and lines[2].startswith("convert: refining 2/3 (")
    assert lines[3].startswith("convert: refining done (") and lines[3].endswith(" s)")
    assert lines[4:6] == ["convert: quantising...", lines[5]] and lines[5].startswith("convert: quantising done (")


def test_a_failed_step_does_not_say_done():
    out = io.StringIO()
    with pytest.raises(ValueError), Steps("x", stream=out).step("work", total=2):
        raise ValueError
    assert "done" not in out.getvalue()


def test_quiet_prints_nothing(capsys):
    with QUIET.step("anything", total=2) as step:
        step.advance(2)
    assert capsys.readouterr() == ("", "")
