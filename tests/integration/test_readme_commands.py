"""Every `python train.py|evaluate.py|generate.py ...` line in README's code blocks runs (tests/readme_commands.py).

Each must exit 0, or give the refusal README documents beside it. The session's ``readme_project``
runs them once; the scale-out tests check the sweeps and the DDP run it made.
"""

from tests.readme_commands import NOT_RUN, REFUSED, readme_commands


def test_readme_lists_the_commands_this_test_runs() -> None:
    lines = [line for _, _, line in readme_commands()]
    assert len(lines) >= 30 and any("labels={0:10,1:20}" in line for line in lines)
    assert all(any(fragment in line for line in lines) for fragment in [*NOT_RUN, *REFUSED])


def test_every_readme_command_runs_or_gives_its_documented_refusal(readme_project) -> None:
    _, outcomes = readme_project
    failures = [f"{o.line}\n  exit {o.result.returncode}: {o.result.stderr.strip()[-1500:]}" for o in outcomes if not o.ok]
    assert not failures, "\n".join(failures)
    assert sum(o.result is not None for o in outcomes) >= 30
