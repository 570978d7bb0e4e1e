"""Reading artifacts back as plain data: what passes, what is refused, and with which sentence."""

import pytest

from synthset.data.datamodule import datamodule_from_record
from synthset.data.sources import build_source
from synthset.errors import SynthsetError
from synthset.models import DCGAN
from synthset.plaindata import check_arguments, first_impurity, require_plain, without_hydra_keys


@pytest.mark.parametrize("value", [{"a": [1, 2.5, "x", None, True]}, [], "text", {"nested": {"deep": [{"k": 1}]}}])
def test_plain_data_passes(value) -> None:
    assert first_impurity(value) is None
    assert require_plain(value, "the record") is None  # and it does not raise


@pytest.mark.parametrize(("value", "where"), [
    ({"a": {"_target_": "os.system"}}, "a._target_"),
    ({"list": [{"x": 1}, {"_partial_": True}]}, "list[1]._partial_"),
    ({"obj": object()}, "obj=object"),
    ({1: "non-string key"}, "1=1"),
])
def test_hydra_keys_and_objects_are_refused_naming_where(value, where: str) -> None:
    with pytest.raises(SynthsetError, match="not plain data") as caught:
        require_plain(value, "the record")
    assert where in str(caught.value)


def test_stored_configs_drop_hydra_keys() -> None:
    assert without_hydra_keys({"_target_": "x", "a": [{"_target_": "y", "b": 1}]}) == {"a": [{"b": 1}]}


def test_arguments_are_checked_against_the_registered_class() -> None:
    check_arguments(DCGAN, {"channels": 1, "image_size": 16, "betas": [0.5, 0.999], "diffaugment": None}, "model.", "x")
    with pytest.raises(SynthsetError, match=r"model.width='wide' \(from x\) is not an integer"):
        check_arguments(DCGAN, {"width": "wide"}, "model.", "x")
    with pytest.raises(SynthsetError, match="model.on_load .* is not an option"):
        check_arguments(DCGAN, {"on_load": 1}, "model.", "x")
    with pytest.raises(SynthsetError, match="is not true or false"):
        check_arguments(DCGAN, {"spectral_norm": 1}, "model.", "x")


def test_sources_come_only_from_the_registry() -> None:
    assert build_source({"kind": "digits"}).kind == "digits"
    with pytest.raises(SynthsetError, match="names source kind 'os.system'"):
        build_source({"kind": "os.system"})
    with pytest.raises(SynthsetError, match="not plain data"):
        datamodule_from_record({"name": "x", "source": {"_target_": "synthset.data.DigitsSource"}})
