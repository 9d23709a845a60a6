"""The README's examples stay true: its service documents parse, its commands exist."""

import re
from pathlib import Path

from typer.testing import CliRunner

from gs_engine.cli import app
from gs_engine.spec import load_service

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BASE = "service:\n  name: example\n  containers: [{command: [python, server.py]}]\n"


def test_yaml_blocks_are_valid_service_documents() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        document = block if block.startswith("service:") else BASE + block
        load_service(document)


def test_gse_commands_in_the_readme_exist() -> None:
    runner = CliRunner()
    commands = set(re.findall(r"^gse ([a-z]+(?: [a-z]+)?)", README, re.M))
    assert {"up", "apply", "get services", "call digits", "autoscale simulate"} <= commands
    for command in commands:
        words = [w for w in command.split() if w != "digits"]
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, (command, result.output)
