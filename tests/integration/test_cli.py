"""The real entry points: help that helps, and Hydra's grammar for the options README shows."""

from pathlib import Path

from tests.conftest import run_entry


def test_help_lists_groups_and_examples(tmp_path: Path) -> None:
    result = run_entry("train.py", "--help", root=tmp_path)
    assert result.returncode == 0
    for text in ("model: dcgan, sngan, vae, wgan", "data: cifar10, digits, fashion_mnist, folder, mnist",
                 "fmnist_cgan, fmnist_vae, quickstart", "make run", "resume=last"):
        assert text in result.stdout, text


def test_unknown_group_option_is_one_line_without_the_search_path(tmp_path: Path) -> None:
    result = run_entry("generate.py", "metrics=fast", root=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: metrics=fast is not one of the metrics configs (default); "
                                     "pick one of them, e.g. metrics=default.")
