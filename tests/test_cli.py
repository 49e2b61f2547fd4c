"""The command line: help, version, and errors that exit with code 2."""

from __future__ import annotations

import pytest

from carbonedge.cli.main import main


def test_version_prints_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "carbonedge" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: carbonedge" in capsys.readouterr().out
