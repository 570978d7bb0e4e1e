"""Sharded, resumable, atomic generation: every finished shard is recorded with its sha256 (see ``manifest``)."""

import contextlib
import math
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synthset.data.datamodule import to_signed_unit, to_uint8
from synthset.errors import require
from synthset.generation.manifest import Manifest
from synthset.generation.memorization import MemorizationCheck
from synthset.generation.spec import GenerationSpec
from synthset.generation.writers import DatasetWriter
from synthset.metrics.classifier import ReferenceClassifier
from synthset.models.base import GenerativeModel

SAMPLE_BATCH = 256
MAX_REPLACEMENT_ROUNDS = 20


@contextlib.contextmanager
def sampling_threads_beside(encoders: int) -> Iterator[None]:
    """Sample on the cores the encoder processes leave free: oversubscribed OpenMP threads spin-wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - encoders)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    drawn: int = 0  # images sampled for the first draw (more than kept with the top-k filter)
    flagged: int = 0  # memorized-looking images among the first draws
    disagreed: int = 0  # first draws the reference classifier did not assign to their label
    replaced: int = 0


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
            images = self.model.sample(min(SAMPLE_BATCH, n - start), batch_labels, generator, self.spec.temperature)
            chunks.append(to_uint8(images).cpu())
        return torch.cat(chunks)

    def top_k_scores(self, images: torch.Tensor, label: int | None) -> torch.Tensor:
        """How good each draw looks to ``spec.top_k_by``: the reference classifier's p(label), or D's logit."""
        if self.spec.top_k_by == "discriminator":
            labels = torch.full((len(images),), label, dtype=torch.long) if label is not None else None
            return self.model.discriminator_scores(to_signed_unit(images), labels, batch_size=SAMPLE_BATCH)
        return self.classifier.probabilities(images)[:, label]

    def draw_top_k(self, labels: torch.Tensor | None, n: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """Per class (or all at once, unconditional), draw ceil(m / top_k) images and keep the m that score best.

        Scored by the reference classifier's confidence (GaFi's dynamic sample filtering) or by the GAN's own
        discriminator (discriminator rejection sampling, Azadi et al. 2019, as a fixed acceptance rate).
        """
        groups = [((labels == c).nonzero().squeeze(1), c) for c in labels.unique().tolist()] if labels is not None \
            else [(torch.arange(n), None)]
        images = None
        drawn_total = 0
        for positions, c in groups:
            drawn = math.ceil(len(positions) / self.spec.top_k)
            candidates = self.draw(torch.full((drawn,), c, dtype=torch.long) if c is not None else None, drawn, generator)
            best = self.top_k_scores(candidates, c).argsort(descending=True, stable=True)[: len(positions)]
            kept = candidates[best.sort().values]  # in draw order: any prefix (the card's sample) is a fair sample
            if images is None:
                images = torch.empty((n, *kept.shape[1:]), dtype=kept.dtype)
            images[positions] = kept
            drawn_total += drawn
        return images, drawn_total

    def first_draw(self, labels: torch.Tensor | None, n: int, generator: torch.Generator,
                   filtered: bool) -> tuple[torch.Tensor, int]:
        if filtered and self.spec.top_k is not None:
            return self.draw_top_k(labels, n, generator)
        return self.draw(labels, n, generator), n

    def shard_images(self, shard: int, filtered: bool = True) -> ShardImages:
        """Shard ``shard``'s images; with ``filtered``, rejected ones are redrawn (same labels, same stream)."""
        indices = self.spec.shard_range(shard)
        labels = self.labels[indices.start : indices.stop] if self.labels is not None else None
        generator = torch.Generator().manual_seed(shard_seed(self.spec.seed, shard))
        images, drawn = self.first_draw(labels, len(indices), generator, filtered)
        out = ShardImages(images, labels, drawn=drawn)
        if self.memorization is not None:
            out.distances, out.neighbours = self.memorization.distances(out.images)
            out.flagged = int(self.memorization.flagged(out.distances).sum())
        if self.classifier is not None and self.spec.label_agreement is not None:
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
            if out.agreement is not None:
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
        if out.agreement is not None:
            mask |= out.agreement < self.spec.label_agreement
        return mask

    def encode(self, shard: int, images: np.ndarray, labels: torch.Tensor | None, pool: ProcessPoolExecutor | None):
        """Hand the shard to the writer's encoder processes (PNG bytes, files, or a whole tar), or encode it here."""
        indices = list(self.spec.shard_range(shard))
        return self.writer.submit(pool, shard, indices, images, labels.numpy() if labels is not None else None)

    def finish_shard(self, manifest: Manifest, shard: int, produced: ShardImages, images: np.ndarray, submitted) -> int:
        """Write one encoded shard and record it (the resume point); returns its size."""
        labels = produced.labels.numpy() if produced.labels is not None else None
        _, digest = self.writer.write_shard(shard, list(self.spec.shard_range(shard)), images, labels, submitted)
        manifest.record_shard(self.out, shard, {
            "count": len(images), "sha256": digest,
            "drawn": produced.drawn, "flagged": produced.flagged, "disagreed": produced.disagreed,
            "replaced": produced.replaced,
            "class_counts": np.bincount(labels, minlength=len(self.writer.class_names)).tolist() if labels is not None else None,
        })
        return len(images)

    def run(self, manifest: Manifest, num_workers: int = 2, progress: bool = True, rank: int = 0,
            world_size: int = 1) -> Manifest:
        """Write this process's missing shards (shard ``s`` belongs to rank ``s % world_size``).

        Sampling shard i overlaps with the encoder processes working on up to ``num_workers`` earlier shards.
        """
        todo = [s for s in range(self.spec.num_shards) if s % world_size == rank and str(s) not in manifest.shards]
        mine = sum(len(self.spec.shard_range(s)) for s in range(rank, self.spec.num_shards, world_size))
        left = sum(len(self.spec.shard_range(s)) for s in todo)
        pool = ProcessPoolExecutor(num_workers) if self.writer.uses_workers and num_workers > 1 else None
        depth = max(1, num_workers) if pool else 1
        desc = "generating" if world_size == 1 else f"generating (process {rank + 1}/{world_size})"
        threads = sampling_threads_beside(num_workers if pool else 0)
        try:
            with threads, tqdm(total=mine, initial=mine - left, unit="img", desc=desc, disable=not progress) as bar:
                pending: deque = deque()
                for shard in todo:
                    produced = self.shard_images(shard)
                    images = produced.images.numpy()
                    pending.append((shard, produced, images, self.encode(shard, images, produced.labels, pool)))
                    if len(pending) > depth:
                        bar.update(self.finish_shard(manifest, *pending.popleft()))
                while pending:
                    bar.update(self.finish_shard(manifest, *pending.popleft()))
        finally:
            if pool is not None:
                pool.shutdown()
        return manifest

    def complete(self, manifest: Manifest) -> Manifest:
        """Once every shard exists: assemble the format, then fold the shard records into one manifest."""
        missing = [s for s in range(self.spec.num_shards) if str(s) not in manifest.shards]
        require(not missing, f"shards {missing[:5]} were not written; run the same command again to finish them.")
        if not manifest.complete:
            self.writer.finalize(self.spec.num_shards)
            manifest.finish(self.out)
        return manifest
