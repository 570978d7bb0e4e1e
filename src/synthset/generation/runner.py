"""Sharded, resumable, atomic generation: a manifest records every finished shard with its sha256."""

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from synthset.data.datamodule import to_uint8
from synthset.errors import SynthsetError, require
from synthset.generation.memorization import MemorizationCheck
from synthset.generation.spec import GenerationSpec
from synthset.generation.writers import DatasetWriter, encode_png
from synthset.models.base import GenerativeModel

MANIFEST = "manifest.json"
SAMPLE_BATCH = 256
MAX_REPLACEMENT_ROUNDS = 20


def shard_seed(seed: int, shard: int) -> int:
    """Each shard has its own stream: any process can produce any shard identically."""
    return seed * 1_000_003 + shard


@dataclass
class ShardImages:
    images: torch.Tensor  # uint8 (n, C, H, W)
    labels: torch.Tensor | None
    distances: torch.Tensor | None = None  # nearest-training-image distance per image
    neighbours: torch.Tensor | None = None
    flagged: int = 0  # memorized-looking images among the first draws
    replaced: int = 0


@dataclass
class Manifest:
    spec: dict[str, Any]
    digest: str
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False

    @classmethod
    def load(cls, path: Path) -> "Manifest | None":
        return cls(**json.loads(path.read_text())) if path.is_file() else None

    def save(self, path: Path) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(self.__dict__, indent=1, sort_keys=True))
        os.replace(temporary, path)


def prepare_output(out: Path, spec: GenerationSpec, overwrite: bool) -> Manifest:
    """Resume a matching output, refuse a different one (unless ``overwrite``), or start a new one."""
    manifest = Manifest.load(out / MANIFEST)
    if manifest is not None and manifest.digest == spec.digest():
        return manifest
    if out.exists() and any(out.iterdir()):
        require(
            overwrite,
            f"out={out} already holds "
            + ("a dataset with a different spec" if manifest else "other files")
            + "; choose another out=... or pass overwrite=true to replace it.",
        )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SynthsetError(f"out={out} cannot be created ({error.strerror}); choose a writable out=... folder.") from None
    require(os.access(out, os.W_OK), f"out={out} is not writable; choose a writable out=... folder.")
    return Manifest(spec=spec.to_dict(), digest=spec.digest())


class ShardedGeneration:
    """Produces shard ``i`` as a pure function of (model, spec, i) and writes the missing ones."""

    def __init__(self, model: GenerativeModel, spec: GenerationSpec, labels: torch.Tensor | None,
                 writer: DatasetWriter, out: Path, memorization: MemorizationCheck | None = None) -> None:
        self.model, self.spec, self.labels, self.writer, self.out = model, spec, labels, writer, out
        self.memorization = memorization

    def draw(self, labels: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        chunks = []
        for start in range(0, n, SAMPLE_BATCH):
            batch_labels = labels[start : start + SAMPLE_BATCH] if labels is not None else None
            chunks.append(to_uint8(self.model.sample(min(SAMPLE_BATCH, n - start), batch_labels, generator=generator)).cpu())
        return torch.cat(chunks)

    def shard_images(self, shard: int) -> ShardImages:
        indices = self.spec.shard_range(shard)
        labels = self.labels[indices.start : indices.stop] if self.labels is not None else None
        generator = torch.Generator().manual_seed(shard_seed(self.spec.seed, shard))
        out = ShardImages(self.draw(labels, len(indices), generator), labels)
        if self.memorization is None:
            return out
        out.distances, out.neighbours = self.memorization.distances(out.images)
        flagged = self.memorization.flagged(out.distances)
        out.flagged = int(flagged.sum())
        rounds = 0
        # Replace flagged images with fresh draws of the same labels, so the count stays num_samples.
        while self.spec.drop_memorized and flagged.any():
            require(rounds < MAX_REPLACEMENT_ROUNDS, f"shard {shard}: images keep matching training images after "
                    f"{rounds} redraws; the model memorizes, so lower memorization.percentile or retrain.")
            positions = flagged.nonzero().squeeze(1)
            redraw = self.draw(labels[positions] if labels is not None else None, len(positions), generator)
            out.images[positions] = redraw
            out.distances[positions], out.neighbours[positions] = self.memorization.distances(redraw)
            out.replaced += len(positions)
            flagged = self.memorization.flagged(out.distances)
            rounds += 1
        return out

    def run(self, manifest: Manifest, num_workers: int = 2, progress: bool = True) -> Manifest:
        todo = [s for s in range(self.spec.num_shards) if str(s) not in manifest.shards]
        done = self.spec.num_samples - sum(len(self.spec.shard_range(s)) for s in todo)
        pool = ProcessPoolExecutor(num_workers) if self.writer.needs_png and num_workers > 1 else None
        try:
            with tqdm(total=self.spec.num_samples, initial=done, unit="img", desc="generating", disable=not progress) as bar:
                for shard in todo:
                    produced = self.shard_images(shard)
                    images = produced.images.numpy()
                    labels = produced.labels.numpy() if produced.labels is not None else None
                    pngs: list[bytes] = []
                    if self.writer.needs_png:
                        pngs = list(pool.map(encode_png, images, chunksize=32)) if pool else [encode_png(im) for im in images]
                    files, digest = self.writer.write_shard(shard, list(self.spec.shard_range(shard)), images, labels, pngs)
                    manifest.shards[str(shard)] = {
                        "count": len(images), "sha256": digest, "files": files,
                        "flagged": produced.flagged, "replaced": produced.replaced,
                        "class_counts": np.bincount(labels, minlength=len(self.writer.class_names)).tolist() if labels is not None else None,
                    }
                    manifest.save(self.out / MANIFEST)
                    bar.update(len(images))
        finally:
            if pool is not None:
                pool.shutdown()
        if not manifest.complete:
            self.writer.finalize(self.spec.num_shards)
            manifest.complete = True
            manifest.save(self.out / MANIFEST)
        return manifest
