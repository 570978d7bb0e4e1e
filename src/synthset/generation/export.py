"""Write images already in memory as a dataset of a given format, with its own manifest (a curated copy).

The shards list their files explicitly, so the manifest accounts for everything the export wrote.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from synthset.generation.manifest import Manifest, prepare_output
from synthset.generation.writers import WRITERS


def listed_files(manifest: Manifest) -> list[str]:
    """Files a manifest lists shard by shard (exports do; generated datasets derive them from their spec)."""
    return [name for entry in manifest.shards.values() for name in entry.get("files", [])]


def write_images(out: Path, images: torch.Tensor, labels: torch.Tensor | None, class_names: list[str], fmt: str,
                 shard_size: int, spec: dict[str, Any], progress: bool = True) -> Manifest:
    """Shards of ``shard_size`` images in ``fmt``; resumable like generation (each shard recorded as it lands)."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    manifest = prepare_output(out, spec, digest, class_names, overwrite=False, data_files=listed_files)
    writer = WRITERS[fmt](out, class_names)
    shards = -(-len(images) // shard_size)
    for shard in tqdm(range(shards), desc="exporting", unit="shard", disable=not progress):
        if str(shard) in manifest.shards:
            continue
        indices = list(range(shard * shard_size, min((shard + 1) * shard_size, len(images))))
        batch = images[indices[0] : indices[-1] + 1].numpy()
        shard_labels = labels[indices[0] : indices[-1] + 1].numpy() if labels is not None else None
        files, sha = writer.write_shard(shard, indices, batch, shard_labels,
                                        writer.submit(None, shard, indices, batch, shard_labels))
        manifest.record_shard(out, shard, {
            "count": len(indices), "sha256": sha, "files": files,
            "class_counts": np.bincount(shard_labels, minlength=len(class_names)).tolist() if shard_labels is not None else None,
        })
    if not manifest.complete:
        writer.finalize(shards)
        manifest.finish(out)
    return manifest
