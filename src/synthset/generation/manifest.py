"""The manifest of a generated dataset: what it is (its spec), which shards are done, and which files it owns.

- ``manifest.json`` is written when a dataset starts and again when it completes; it says
  ``"writer": "synthset"``.
- Each finished shard adds its own small record under ``.manifest/`` (the resume point), so
  recording a shard costs the same at shard 10 as at shard 100,000: nothing is rewritten.
- ``overwrite=true`` replaces only a folder whose manifest synthset wrote, and only when every file
  in it is one that manifest accounts for; anything else is refused and left untouched.
"""

import json
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synthset.atomic import atomic_write_text
from synthset.errors import SynthsetError, require
from synthset.plaindata import first_impurity

MANIFEST = "manifest.json"
SHARD_RECORDS = ".manifest"
WRITER = "synthset"
FORMAT_VERSION = 3
# The manifest version from which each format's shards have their present layout (hf: Arrow, was npz).
LAYOUT_SINCE = {"hf": 3}
# Files the card and later steps (utility, review) add beside the data.
CARD_FILES = ("README.md", "synthset.json", "grid.png", "closest_pairs.png", "classes.json",
              "review.sqlite", "review.sqlite-wal", "review.sqlite-shm", "review.sqlite-journal")


def shard_record_name(shard: int) -> str:
    return f"{SHARD_RECORDS}/shard-{shard:08d}.json"


@dataclass
class Manifest:
    spec: dict[str, Any]
    digest: str
    class_names: list[str] = field(default_factory=list)
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = False
    writer: str = WRITER
    version: int = FORMAT_VERSION

    @classmethod
    def load(cls, out: Path) -> "Manifest | None":
        """The folder's manifest if synthset wrote it; None when there is none or it is someone else's file."""
        try:
            data = json.loads((Path(out) / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("writer") != WRITER or first_impurity(data) is not None:
            return None
        try:
            return cls(**{k: data[k] for k in ("spec", "digest", "class_names", "shards", "complete", "writer", "version")})
        except (KeyError, TypeError):
            return None

    @classmethod
    def load_with_records(cls, out: Path) -> "Manifest | None":
        """The manifest plus every shard record of the same spec (a resumed or distributed run)."""
        manifest = cls.load(out)
        if manifest is None:
            return None
        for record in sorted((Path(out) / SHARD_RECORDS).glob("shard-*.json")):
            try:
                entry = json.loads(record.read_text())
            except (OSError, ValueError):
                continue  # a record cut short by a kill: that shard is simply written again
            if entry.get("digest") == manifest.digest:
                manifest.shards[str(entry["shard"])] = entry["entry"]
        return manifest

    def save(self, out: Path) -> None:
        atomic_write_text(Path(out) / MANIFEST, json.dumps(asdict(self), indent=1, sort_keys=True))

    def record_shard(self, out: Path, shard: int, entry: dict[str, Any]) -> None:
        """Commit one finished shard: its own small file, so nothing else is rewritten."""
        self.shards[str(shard)] = entry
        payload = {"digest": self.digest, "shard": shard, "entry": entry}
        atomic_write_text(Path(out) / shard_record_name(shard), json.dumps(payload, sort_keys=True))

    def finish(self, out: Path) -> None:
        """Fold the shard records into ``manifest.json`` (complete), then remove the records."""
        self.complete = True
        self.save(out)
        shutil.rmtree(Path(out) / SHARD_RECORDS, ignore_errors=True)


TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")  # synthset's atomic writes (synthset.atomic) cut short by a kill


def owned_files(out: Path, manifest: Manifest, data_files: Callable[[Manifest], Iterable[str]]) -> set[Path]:
    """Every path the manifest accounts for: the card files, its records, its temporaries and its data files."""
    owned = {out / MANIFEST, *(out / name for name in CARD_FILES)}
    owned |= set((out / SHARD_RECORDS).glob("*"))
    owned |= {p for p in out.rglob(".*.tmp-*") if TEMPORARY.match(p.name)}
    owned |= {out / name for name in data_files(manifest)}
    return owned


def replace_owned(out: Path, manifest: Manifest, data_files: Callable[[Manifest], Iterable[str]]) -> None:
    """Delete a synthset dataset, refusing (and deleting nothing) if any file in it is not its own."""
    owned = owned_files(out, manifest, data_files)
    present = {p for p in out.rglob("*") if p.is_file() or p.is_symlink()}
    foreign = sorted(present - owned)
    require(not foreign, f"out={out} holds {len(foreign)} file(s) this dataset's manifest does not account for "
            f"(e.g. {foreign[0].relative_to(out) if foreign else ''}); synthset deletes only what it wrote, so move "
            "them away or choose another out=....")
    for path in present:
        path.unlink()
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()


def prepare_output(out: Path, spec: dict[str, Any], digest: str, class_names: list[str], overwrite: bool,
                   data_files: Callable[[Manifest], Iterable[str]]) -> Manifest:
    """Resume a matching dataset, replace one synthset wrote (``overwrite``), or start in an empty folder.

    A folder holding anything else is refused and left untouched, whatever ``overwrite`` says.
    """
    manifest = Manifest.load_with_records(out)
    resumable = manifest is not None and (manifest.complete or manifest.version >= LAYOUT_SINCE.get(spec.get("format"), 0))
    if manifest is not None and manifest.digest == digest and not resumable:
        require(overwrite, f"out={out} holds an unfinished {spec['format']} dataset whose shards an earlier synthset "
                "wrote in another layout; pass overwrite=true to write it again, or choose another out=....")
        replace_owned(out, manifest, data_files)
        manifest = None
    if manifest is not None and manifest.digest == digest:
        for leftover in [p for p in out.rglob(".*.tmp-*") if TEMPORARY.match(p.name)]:
            leftover.unlink()  # synthset's own half-written files from a killed run: redone below
        return manifest
    if out.exists() and any(out.iterdir()):
        require(manifest is not None,
                f"out={out} is not empty and holds no dataset synthset wrote (no synthset manifest.json); "
                "synthset never deletes files it did not write, so choose an empty or new out=... folder.")
        require(overwrite, f"out={out} already holds a dataset with a different spec; choose another out=... or pass "
                "overwrite=true to replace it.")
        replace_owned(out, manifest, data_files)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SynthsetError(f"out={out} cannot be created ({error.strerror}); choose a writable out=... folder.") from None
    require(os.access(out, os.W_OK), f"out={out} is not writable; choose a writable out=... folder.")
    manifest = Manifest(spec=spec, digest=digest, class_names=list(class_names))
    manifest.save(out)
    return manifest
