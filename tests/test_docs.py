"""The README's quickstart is the contract with a new user: two commands, and CI runs the second."""

import re

from helpers import REPO


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)]


def test_quickstart_is_exactly_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_quickstart_generates_and_trains_the_default_project():
    generate = quickstart_commands()[0]
    assert "pip install -r requirements-dev.txt" in generate
    assert "cookiecutter --no-input ." in generate
    assert generate.endswith("python train.py -c config.json")


def test_ci_runs_the_quickstart_test_command():
    """.ci/run executes the README's test command (split at `&&` so a failing install stops it)."""
    test_command = quickstart_commands()[1]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    for part in test_command.split("&&"):
        assert part.strip() in ci_lines, part
