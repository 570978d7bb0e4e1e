"""The small parts behind scale-out: sweep refusals, replica digests, distributed manifests."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from synthset.callbacks.replica_check import weights_digest
from synthset.errors import SynthsetError
from synthset.generation.manifest import MANIFEST, SHARD_RECORDS, Manifest
from synthset.tracking.sweep import check_sweepable, subprocess_ddp, sweep_params


@pytest.mark.parametrize(
    ("strategy", "devices", "relaunches"),
    [
        ("ddp_find_unused_parameters_true", 2, True),
        ("ddp", "auto", True),
        ("ddp", 1, False),
        ("ddp_spawn_find_unused_parameters_true", 2, False),
        ("ddp_fork", 4, False),
        ("auto", 2, False),
    ],
)
def test_only_script_relaunching_ddp_counts_as_subprocess_ddp(strategy, devices, relaunches: bool) -> None:
    assert subprocess_ddp(OmegaConf.create({"strategy": strategy, "devices": devices})) is relaunches


def config(strategy: str = "auto", every_n_steps: int = 500):
    return OmegaConf.create({"trainer": {"strategy": strategy, "devices": 2}, "eval": {"every_n_steps": every_n_steps}})


def test_local_multirun_with_ddp_is_refused_but_submitit_and_spawn_pass() -> None:
    with pytest.raises(SynthsetError, match=r"hydra/launcher=joblib.*trainer=ddp_spawn"):
        check_sweepable(config("ddp_find_unused_parameters_true"), {"hydra/launcher": "joblib"})
    check_sweepable(config("ddp_find_unused_parameters_true"), {"hydra/launcher": "submitit_slurm"})
    check_sweepable(config("ddp_spawn_find_unused_parameters_true"), {"hydra/launcher": "basic"})


def test_optuna_needs_evaluation() -> None:
    with pytest.raises(SynthsetError, match="eval.every_n_steps=0 turns evaluation off"):
        check_sweepable(config(every_n_steps=0), {"hydra/sweeper": "optuna"})
    check_sweepable(config(every_n_steps=0), {"hydra/sweeper": "basic"})


def test_sweep_overrides_become_params() -> None:
    assert sweep_params(["model=dcgan,wgan", "+trainer.profiler=simple", "data=digits"]) == {
        "model": "dcgan,wgan", "trainer.profiler": "simple", "data": "digits"}


def test_weights_digest_sees_any_changed_weight() -> None:
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.weight[1, 2] += 1e-3
    assert weights_digest(a) != weights_digest(b)


def test_shard_records_of_every_process_merge_into_one_manifest(tmp_path: Path) -> None:
    """Each process records its shards in its own small file; records of another spec are ignored."""
    mine = Manifest(spec={}, digest="d1")
    mine.save(tmp_path)
    mine.record_shard(tmp_path, 0, {"count": 2})
    Manifest(spec={}, digest="d1").record_shard(tmp_path, 1, {"count": 2})  # another process, same dataset
    Manifest(spec={}, digest="other").record_shard(tmp_path, 2, {"count": 2})  # a leftover of another spec
    (tmp_path / SHARD_RECORDS / "shard-00000003.json").write_text('{"digest": "d1", "sh')  # cut short by a kill
    merged = Manifest.load_with_records(tmp_path)
    assert sorted(merged.shards) == ["0", "1"]
    merged.finish(tmp_path)
    assert not (tmp_path / SHARD_RECORDS).exists() and Manifest.load(tmp_path).complete


def test_recording_a_shard_never_rewrites_the_manifest(tmp_path: Path) -> None:
    manifest = Manifest(spec={}, digest="d1")
    manifest.save(tmp_path)
    before = (tmp_path / MANIFEST).stat().st_mtime_ns, (tmp_path / MANIFEST).read_bytes()
    for shard in range(50):
        manifest.record_shard(tmp_path, shard, {"count": 1})
    assert ((tmp_path / MANIFEST).stat().st_mtime_ns, (tmp_path / MANIFEST).read_bytes()) == before
    assert all(len(p.read_bytes()) < 200 for p in (tmp_path / SHARD_RECORDS).iterdir())  # O(1) per shard


def test_a_manifest_someone_else_wrote_is_not_synthsets(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text('{"spec": {}, "digest": "x", "shards": {}}')
    assert Manifest.load(tmp_path) is None


def test_sampling_leaves_the_encoders_their_cores_and_restores_its_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthset.generation.runner import sampling_threads_beside

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    before = torch.get_num_threads()
    torch.set_num_threads(8)
    try:
        with sampling_threads_beside(2):
            assert torch.get_num_threads() == 6
        with sampling_threads_beside(8):
            assert torch.get_num_threads() == 1  # never zero
        assert torch.get_num_threads() == 8
    finally:
        torch.set_num_threads(before)


def test_a_shard_tar_is_a_standard_tar_whose_digest_is_its_bytes(tmp_path: Path) -> None:
    import hashlib
    import tarfile

    import numpy as np

    from synthset.generation.writers import build_tar

    images = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    path = tmp_path / "shard.tar"
    digest = build_tar(str(path), [7, 8, 9], images, np.array([0, 1, 9]))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["00000007.png", "00000007.cls", "00000008.png", "00000008.cls",
                                             "00000009.png", "00000009.cls"]
        assert tar.extractfile("00000009.cls").read() == b"9" and all(m.mtime == 0 for m in members)


@pytest.mark.parametrize("class_names", [["coat", "bag", "boot"], []])
def test_hf_shards_built_apart_assemble_into_one_dataset_with_the_source_ids(tmp_path: Path, class_names) -> None:
    import hashlib

    import datasets
    import numpy as np

    from synthset.generation.readers import read_hf
    from synthset.generation.writers import HuggingFaceWriter

    images = np.random.default_rng(0).integers(0, 256, (5, 1, 8, 8), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 0])
    writer = HuggingFaceWriter(tmp_path, class_names)
    for shard, indices in enumerate([[0, 1, 2], [3, 4]]):
        batch, batch_labels = images[indices], labels[indices]
        files, digest = writer.write_shard(shard, indices, batch, batch_labels,
                                           writer.submit(None, shard, indices, batch, batch_labels))
        assert files == writer.shard_files(shard, indices, batch_labels)
        assert digest == hashlib.sha256((tmp_path / files[0]).read_bytes()).hexdigest()
    writer.finalize(2)
    back, back_labels = read_hf(tmp_path, bool(class_names), channels=1)
    assert np.array_equal(back, images)
    assert back_labels.tolist() == (labels.tolist() if class_names else [-1] * 5)
    features = datasets.load_from_disk(str(tmp_path / "data")).features
    assert set(features) == ({"image", "label"} if class_names else {"image"})
    assert not class_names or features["label"].names == class_names
    assert sorted(writer.assembled_files()) == sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "data").rglob("*"))


def test_an_unfinished_hf_dataset_of_the_npz_layout_is_rewritten_only_with_overwrite(tmp_path: Path) -> None:
    from synthset.generation.manifest import prepare_output
    from synthset.generation.writers import HuggingFaceWriter

    spec = {"format": "hf"}
    old = Manifest(spec=spec, digest="d1", class_names=["a"], version=2)
    old.save(tmp_path)
    old.record_shard(tmp_path, 0, {"count": 1})
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "shard-000000.npz").write_bytes(b"npz")

    def data_files(manifest: Manifest) -> list[str]:
        return HuggingFaceWriter(tmp_path, manifest.class_names).assembled_files()

    with pytest.raises(SynthsetError, match="overwrite=true"):
        prepare_output(tmp_path, spec, "d1", ["a"], overwrite=False, data_files=data_files)
    assert (tmp_path / "shards" / "shard-000000.npz").exists()
    fresh = prepare_output(tmp_path, spec, "d1", ["a"], overwrite=True, data_files=data_files)
    assert fresh.version == 3 and not fresh.shards and not (tmp_path / "shards").exists()
    old.complete = True  # a finished dataset of the old layout is still read as it is
    old.save(tmp_path)
    assert prepare_output(tmp_path, spec, "d1", ["a"], overwrite=False, data_files=data_files).complete
