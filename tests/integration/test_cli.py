"""The real train.py CLI: help, and bad input as one clear line with a non-zero exit."""

from pathlib import Path

import pytest

from tests.conftest import run_cli


def assert_one_clear_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr[-2000:]


def test_help_lists_groups_and_examples(tmp_path: Path) -> None:
    result = run_cli("train.py", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for text in ("model: dcgan, vae, wgan", "data: cifar10, digits, fashion_mnist, folder, mnist", "make run", "resume=last"):
        assert text in result.stdout


def test_unknown_model_lists_the_choices(tmp_path: Path) -> None:
    result = run_cli("train.py", "model=stylegan", cwd=tmp_path)
    assert_one_clear_error(result, "model/stylegan", "dcgan", "wgan", "vae")


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["data=cifar10"], None, "data.download=true"),
        (["data.image_size=48"], None, "data.image_size=48 is not supported"),
        ([], {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}, "MLFLOW_TRACKING_URI=http://127.0.0.1:9 is unreachable"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], env: dict | None, fragment: str) -> None:
    result = run_cli("train.py", *args, cwd=tmp_path, env=env)
    assert_one_clear_error(result, fragment)
    assert result.returncode == 2
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1
