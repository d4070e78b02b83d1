"""The command line: help, version, completion, lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from mmprep import __version__
from mmprep.cli import COMMANDS, cli


def test_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_every_command_has_help():
    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Usage:" in result.output


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_help_does_not_import_torch():
    code = ("import sys\nfrom mmprep.cli import main\nsys.argv = ['mmprep', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_shell_completion():
    result = CliRunner().invoke(cli, ["completion", "bash"])
    assert result.exit_code == 0 and "_MMPREP_COMPLETE" in result.output
    env = {**os.environ, "COMP_WORDS": "mmprep extract x --resize ", "COMP_CWORD": "4",
           "_MMPREP_COMPLETE": "bash_complete"}
    out = subprocess.run([sys.executable, "-m", "mmprep"], env=env, capture_output=True,
                         text=True).stdout
    assert "center-crop" in out


def test_unknown_command():
    result = CliRunner().invoke(cli, ["nope"])
    assert result.exit_code == 2


def test_public_api_resolves_and_stays_light():
    code = ("import sys, mmprep\n"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules\n"
            "for name in mmprep.__all__:\n"
            "    assert getattr(mmprep, name) is not None, name\n"
            "assert callable(mmprep.run_extract) and callable(mmprep.run_embed)\n"
            "import mmprep.extract, mmprep.embed\n"
            "assert mmprep.run_extract is mmprep.extract.extract\n"
            "assert mmprep.run_embed is mmprep.embed.embed\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_help_lists_commands_without_importing_them():
    code = ("import sys\nfrom mmprep.cli import main\nsys.argv = ['mmprep', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "loaded = [m for m in sys.modules if m.startswith('mmprep.cli.')]\n"
            "assert loaded == [], loaded\n"
            "assert 'numpy' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name, (_, summary) in COMMANDS.items():
        assert name in done.stdout and summary[:30] in done.stdout
