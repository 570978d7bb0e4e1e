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
from synthset.generation.writers import DatasetWriter, encode_png_to
from synthset.metrics.classifier import ReferenceClassifier
from synthset.models.base import GenerativeModel

MANIFEST = "manifest.json"
PART_GLOB = ".manifest.part-*.json"  # one per process of a distributed run, merged into MANIFEST at the end
SAMPLE_BATCH = 256
MAX_REPLACEMENT_ROUNDS = 20


def manifest_part(rank: int, world_size: int) -> str:
    """Where a process records its finished shards: the manifest itself, or its own part."""
    return MANIFEST if world_size == 1 else f".manifest.part-{rank}-of-{world_size}.json"


def shard_seed(seed: int, shard: int) -> int:
    """Each shard has its own stream: any process can produce any shard identically."""
    return seed * 1_000_003 + shard


@dataclass
class ShardImages:
    images: torch.Tensor  # uint8 (n, C, H, W)
    labels: torch.Tensor | None
    distances: torch.Tensor | None = None  # nearest-training-image distance per image
    neighbours: torch.Tensor | None = None
    agreement: torch.Tensor | None = None  # reference classifier's probability of the conditioning label
    flagged: int = 0  # memorized-looking images among the first draws
    disagreed: int = 0  # first draws the reference classifier did not assign to their label
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

    @classmethod
    def load_merged(cls, out: Path) -> "Manifest | None":
        """``manifest.json`` plus the shards that processes of a distributed run recorded in their parts."""
        manifest = cls.load(out / MANIFEST)
        if manifest is not None:
            for part in sorted(out.glob(PART_GLOB)):
                other = cls.load(part)
                if other is not None and other.digest == manifest.digest:
                    manifest.shards.update(other.shards)
        return manifest

    def save(self, path: Path) -> None:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(self.__dict__, indent=1, sort_keys=True))
        os.replace(temporary, path)


def prepare_output(out: Path, spec: GenerationSpec, overwrite: bool) -> Manifest:
    """Resume a matching output, refuse a different one (unless ``overwrite``), or start a new one.

    A new output gets its (empty) manifest at once: the other processes of a distributed run read it.
    """
    manifest = Manifest.load_merged(out)
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
    manifest = Manifest(spec=spec.to_dict(), digest=spec.digest())
    manifest.save(out / MANIFEST)
    return manifest


class ShardedGeneration:
    """Produces shard ``i`` as a pure function of (model, spec, i) and writes the missing ones."""

    def __init__(self, model: GenerativeModel, spec: GenerationSpec, labels: torch.Tensor | None,
                 writer: DatasetWriter, out: Path, memorization: MemorizationCheck | None = None,
                 classifier: ReferenceClassifier | None = None) -> None:
        self.model, self.spec, self.labels, self.writer, self.out = model, spec, labels, writer, out
        self.memorization = memorization
        self.classifier = classifier

    def draw(self, labels: torch.Tensor | None, n: int, generator: torch.Generator) -> torch.Tensor:
        chunks = []
        for start in range(0, n, SAMPLE_BATCH):
            batch_labels = labels[start : start + SAMPLE_BATCH] if labels is not None else None
            chunks.append(to_uint8(self.model.sample(min(SAMPLE_BATCH, n - start), batch_labels, generator=generator)).cpu())
        return torch.cat(chunks)

    def shard_images(self, shard: int, filtered: bool = True) -> ShardImages:
        """Shard ``shard``'s images; with ``filtered``, rejected ones are redrawn (same labels, same stream)."""
        indices = self.spec.shard_range(shard)
        labels = self.labels[indices.start : indices.stop] if self.labels is not None else None
        generator = torch.Generator().manual_seed(shard_seed(self.spec.seed, shard))
        out = ShardImages(self.draw(labels, len(indices), generator), labels)
        if self.memorization is not None:
            out.distances, out.neighbours = self.memorization.distances(out.images)
            out.flagged = int(self.memorization.flagged(out.distances).sum())
        if self.classifier is not None:
            out.agreement = self.agreement(out.images, labels)
            out.disagreed = int((out.agreement < self.spec.label_agreement).sum())
        rejected = self.rejected(out) if filtered else torch.zeros(len(out.images), dtype=torch.bool)
        rounds = 0
        while rejected.any():
            require(rounds < MAX_REPLACEMENT_ROUNDS, f"shard {shard}: {int(rejected.sum())} images still fail the filters "
                    f"after {rounds} redraws; relax filter.label_agreement / memorization.percentile or retrain.")
            positions = rejected.nonzero().squeeze(1)
            redraw_labels = labels[positions] if labels is not None else None
            redraw = self.draw(redraw_labels, len(positions), generator)
            out.images[positions] = redraw
            if self.memorization is not None:
                out.distances[positions], out.neighbours[positions] = self.memorization.distances(redraw)
            if self.classifier is not None:
                out.agreement[positions] = self.agreement(redraw, redraw_labels)
            out.replaced += len(positions)
            rejected = self.rejected(out)
            rounds += 1
        return out

    def agreement(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Probability the reference classifier gives each image's conditioning label."""
        return self.classifier.probabilities(images).gather(1, labels.view(-1, 1)).squeeze(1)

    def rejected(self, out: ShardImages) -> torch.Tensor:
        mask = torch.zeros(len(out.images), dtype=torch.bool)
        if self.spec.drop_memorized and self.memorization is not None:
            mask |= self.memorization.flagged(out.distances)
        if self.classifier is not None:
            mask |= out.agreement < self.spec.label_agreement
        return mask

    def encode(self, shard: int, images: np.ndarray, labels: torch.Tensor | None, pool: ProcessPoolExecutor | None):
        """PNG bytes of every image: a lazy iterator over already-submitted pool work, or a list.

        For one-file-per-image formats the encoders also write the files (the main process only samples).
        """
        if not self.writer.needs_png:
            return []
        paths = self.writer.png_paths(list(self.spec.shard_range(shard)), labels.numpy() if labels is not None else None)
        paths = paths or [None] * len(images)
        return pool.map(encode_png_to, images, paths, chunksize=32) if pool else list(map(encode_png_to, images, paths))

    def finish_shard(self, manifest: Manifest, record: Path, shard: int, produced: ShardImages, images: np.ndarray,
                     pngs) -> int:
        """Write one encoded shard and record it in the manifest (the resume point); returns its size."""
        labels = produced.labels.numpy() if produced.labels is not None else None
        files, digest = self.writer.write_shard(shard, list(self.spec.shard_range(shard)), images, labels, list(pngs))
        manifest.shards[str(shard)] = {
            "count": len(images), "sha256": digest, "files": files,
            "flagged": produced.flagged, "disagreed": produced.disagreed, "replaced": produced.replaced,
            "class_counts": np.bincount(labels, minlength=len(self.writer.class_names)).tolist() if labels is not None else None,
        }
        manifest.save(record)
        return len(images)

    def run(self, manifest: Manifest, num_workers: int = 2, progress: bool = True, rank: int = 0,
            world_size: int = 1) -> Manifest:
        """Write this process's missing shards (shard ``s`` belongs to rank ``s % world_size``)."""
        todo = [s for s in range(self.spec.num_shards) if s % world_size == rank and str(s) not in manifest.shards]
        mine = sum(len(self.spec.shard_range(s)) for s in range(rank, self.spec.num_shards, world_size))
        left = sum(len(self.spec.shard_range(s)) for s in todo)
        record = self.out / manifest_part(rank, world_size)
        pool = ProcessPoolExecutor(num_workers) if self.writer.needs_png and num_workers > 1 else None
        desc = "generating" if world_size == 1 else f"generating (process {rank + 1}/{world_size})"
        try:
            with tqdm(total=mine, initial=mine - left, unit="img", desc=desc, disable=not progress) as bar:
                pending = None
                for shard in todo:
                    # Sampling shard i overlaps with the workers encoding shard i-1.
                    produced = self.shard_images(shard)
                    images = produced.images.numpy()
                    pngs = self.encode(shard, images, produced.labels, pool)
                    if pending is not None:
                        bar.update(self.finish_shard(manifest, record, *pending))
                    pending = (shard, produced, images, pngs)
                if pending is not None:
                    bar.update(self.finish_shard(manifest, record, *pending))
        finally:
            if pool is not None:
                pool.shutdown()
        return manifest

    def complete(self, manifest: Manifest) -> Manifest:
        """Once every shard exists: assemble the format, then one manifest (process parts merged away)."""
        missing = [s for s in range(self.spec.num_shards) if str(s) not in manifest.shards]
        require(not missing, f"shards {missing[:5]} were not written; run the same command again to finish them.")
        if not manifest.complete:
            self.writer.finalize(self.spec.num_shards)
            manifest.complete = True
        manifest.save(self.out / MANIFEST)
        for part in self.out.glob(PART_GLOB):
            part.unlink()
        return manifest
