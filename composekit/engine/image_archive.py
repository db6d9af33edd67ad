"""Layer-thin image archives: what `docker save` wrote, minus the layers the receiving engine already has.

An image is a stack of layers (its RootFS diff IDs, base first). An engine has a layer at position i only together
with the layers below it (the chain), so what a target can reuse is the longest run of bottom layers that one of
its own images starts with. The archive keeps its manifest, configs and every other layer: `docker load` on an
engine that keeps its layers itself (a graph driver such as overlay2) reuses a layer it has by chain and never
opens that layer's file. Pure: no engine here, files only.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Thinned", "shared_layers", "thin_archive"]


def shared_layers(layers: Sequence[str], theirs: Iterable[Sequence[str]]) -> int:
    """How many of ``layers`` (an image's diff IDs, base first) the target has: the longest prefix that one of
    the target's images (``theirs``, each its diff IDs) starts with."""
    best = 0
    for other in theirs:
        n = 0
        for mine, its in zip(layers, other, strict=False):
            if mine != its:
                break
            n += 1
        best = max(best, n)
    return best


@dataclass(frozen=True)
class Thinned:
    layers: int  # layers in the image
    left_out: int  # layer files not in the thin archive (the target has them)


def _manifest(archive: tarfile.TarFile) -> list[dict[str, object]]:
    member = archive.extractfile("manifest.json")
    if member is None:
        raise ValueError("the image archive has no manifest.json")
    loaded = json.loads(member.read())
    if not isinstance(loaded, list) or len(loaded) != 1 or not isinstance(loaded[0], dict):
        raise ValueError("the image archive's manifest.json does not describe exactly one image")
    return loaded


def thin_archive(saved: Path, thin: Path, shared: int) -> Thinned:
    """Copy the `docker save` archive ``saved`` to ``thin`` without the files of its bottom ``shared`` layers
    (a file that a higher layer also uses stays)."""
    with tarfile.open(saved) as archive:
        (image,) = _manifest(archive)
        layers = image.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise ValueError("the image archive's manifest.json lists no layers")
        if not 0 <= shared <= len(layers):
            raise ValueError(f"{shared} shared layers of an image with {len(layers)}")
        left_out = set(layers[:shared]) - set(layers[shared:])
        with tarfile.open(thin, "w", format=archive.format) as out:
            for member in archive:
                if member.name in left_out:
                    continue
                out.addfile(member, archive.extractfile(member) if member.isfile() else None)
    return Thinned(len(layers), len(left_out))
