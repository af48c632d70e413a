"""The README's set-up commands stay in step with CI and the command line."""

from __future__ import annotations

import re
import shlex

from testutils import REPO_ROOT
from mammoscreen.cli import build_parser


def readme_commands():
    text = (REPO_ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", setup, re.S)
    return [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]


def test_ci_runs_the_readme_test_command_verbatim():
    install_and_run, install_and_test = readme_commands()
    assert install_and_test.endswith("python -m pytest")
    ci_lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci_lines


def test_readme_main_command_parses():
    install_and_run, _ = readme_commands()
    command = install_and_run.split("&& mammoscreen ", 1)[1]
    args = build_parser().parse_args(shlex.split(command))
    assert args.command == "demo"  # the main job runs on built-in data, offline

