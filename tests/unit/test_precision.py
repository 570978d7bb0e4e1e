"""bf16 on a CPU is only worth it with bf16 instructions: the training pipeline says so when they are missing."""

import pytest

from synthset.pipelines.train import slow_precision_warning


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_bf16_on_a_cpu_without_bf16_instructions_is_named_with_the_fix(precision: str) -> None:
    message = slow_precision_warning(precision, on_cpu=True, native_bf16=False)
    assert message and f"trainer.precision={precision}" in message and "trainer.precision=32-true" in message


@pytest.mark.parametrize(("precision", "on_cpu", "native"), [("bf16-mixed", True, True), ("bf16-mixed", False, False),
                                                              ("32-true", True, False), ("16-mixed", False, False)])
def test_no_warning_where_bf16_is_native_off_the_cpu_or_unused(precision: str, on_cpu: bool, native: bool) -> None:
    assert slow_precision_warning(precision, on_cpu, native) is None
