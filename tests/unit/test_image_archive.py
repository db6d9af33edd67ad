"""Layer-thin image archives (composekit/engine/image_archive.py) on archives laid out as `docker save` writes them,
and how a shipment is described."""

from __future__ import annotations

import builtins
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from python_on_whales.exceptions import DockerException

from composekit.engine.docker import Docker, Shipped
from composekit.engine.image_archive import shared_layers, thin_archive
from composekit.engine.target import Engine as EngineTarget
from composekit.engine.target import Target

BASE = ["sha256:aa", "sha256:bb", "sha256:cc"]


@pytest.mark.parametrize(
    ("theirs", "shared"),
    [
        ([], 0),  # an empty engine
        ([["sha256:zz"]], 0),  # other images only
        ([["sha256:aa", "sha256:bb"]], 2),  # the base image the app was built FROM
        ([["sha256:aa"], ["sha256:aa", "sha256:bb", "sha256:cc", "sha256:dd"]], 3),  # the longest run wins
        ([["sha256:bb", "sha256:cc"]], 0),  # the same layers higher up: another chain, not reusable
        ([["sha256:aa", "sha256:xx", "sha256:cc"]], 1),  # a chain stops at its first difference
    ],
)
def test_shared_layers_is_the_longest_bottom_run_of_one_of_their_images(theirs: list[list[str]], shared: int) -> None:
    assert shared_layers(BASE, theirs) == shared


def _add(archive: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def saved_image(path: Path, layer_dirs: list[str], layers: list[str] | None = None) -> Path:
    """An archive as `docker save` writes it (engine 20.10): a directory per layer, the config, manifest.json."""
    with tarfile.open(path, "w") as archive:
        for d in layer_dirs:
            _add(archive, f"{d}/")
            _add(archive, f"{d}/VERSION", b"1.0")
            _add(archive, f"{d}/json", json.dumps({"id": d}).encode())
            _add(archive, f"{d}/layer.tar", f"the files of layer {d}".encode() * 2000)
        _add(archive, "cfg.json", b'{"rootfs": {}}')
        manifest = [{"Config": "cfg.json", "RepoTags": ["shop-app:r2"], "Layers": layers or layer_dirs}]
        _add(
            archive,
            "manifest.json",
            json.dumps([{**m, "Layers": [f"{d}/layer.tar" for d in m["Layers"]]} for m in manifest]).encode(),
        )
        _add(archive, "repositories", b'{"shop-app": {"r2": "c"}}')
    return path


def members(path: Path) -> dict[str, bytes | None]:
    with tarfile.open(path) as archive:
        out: dict[str, bytes | None] = {}
        for m in archive:
            f = archive.extractfile(m) if m.isfile() else None
            out[m.name] = f.read() if f else None
        return out


def test_the_shared_bottom_layers_files_are_left_out_and_everything_else_is_kept_as_is(tmp_path: Path) -> None:
    saved = saved_image(tmp_path / "saved.tar", ["a", "b", "c"])
    thinned = thin_archive(saved, tmp_path / "thin.tar", 2)
    assert thinned.layers == 3 and thinned.left_out == 2
    whole, thin = members(saved), members(tmp_path / "thin.tar")
    assert set(whole) - set(thin) == {"a/layer.tar", "b/layer.tar"}
    assert all(thin[name] == whole[name] for name in thin)  # the manifest, config, c's layer: byte for byte
    assert (tmp_path / "thin.tar").stat().st_size < saved.stat().st_size


def test_nothing_shared_or_everything_shared(tmp_path: Path) -> None:
    saved = saved_image(tmp_path / "saved.tar", ["a", "b"])
    assert thin_archive(saved, tmp_path / "none.tar", 0).left_out == 0
    assert members(tmp_path / "none.tar") == members(saved)
    assert thin_archive(saved, tmp_path / "all.tar", 2).left_out == 2
    assert sorted(members(tmp_path / "all.tar")) == [
        "a", "a/VERSION", "a/json", "b", "b/VERSION", "b/json", "cfg.json", "manifest.json", "repositories",
    ]  # fmt: skip


def test_a_file_a_higher_layer_also_uses_stays(tmp_path: Path) -> None:
    """Two layers with the same content share one file in the archive; the upper one still needs it."""
    saved = saved_image(tmp_path / "saved.tar", ["a", "b"], layers=["a", "b", "a"])
    assert thin_archive(saved, tmp_path / "thin.tar", 1).left_out == 0
    assert "a/layer.tar" in members(tmp_path / "thin.tar")


def test_archives_that_are_not_one_saved_image_are_refused(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "bare.tar", "w") as archive:
        _add(archive, "x", b"1")
    with pytest.raises(KeyError):
        thin_archive(tmp_path / "bare.tar", tmp_path / "out.tar", 0)
    with tarfile.open(tmp_path / "two.tar", "w") as archive:
        _add(archive, "manifest.json", b"[{}, {}]")
    with pytest.raises(ValueError, match="does not describe exactly one image"):
        thin_archive(tmp_path / "two.tar", tmp_path / "out.tar", 0)
    with pytest.raises(ValueError, match="3 shared layers of an image with 2"):
        thin_archive(saved_image(tmp_path / "s.tar", ["a", "b"]), tmp_path / "out.tar", 3)


def test_a_shipment_says_how_many_layers_went_and_why_all_did() -> None:
    assert Shipped(52_428_800, 5, 3).describe() == "52,428,800 bytes sent (2 of 5 layers; it had the other 3)"
    assert Shipped(218_699_264, 5, 0).describe() == "218,699,264 bytes sent (all 5 layers)"
    assert Shipped(3_584, 5, 5).describe() == "3,584 bytes sent (0 of 5 layers; it had the other 5)"
    refused = Shipped(9, 5, 0, "the engine refused the archive without the layers it has (x): sent the whole image")
    assert refused.describe().endswith(
        "(all 5 layers); the engine refused the archive without the layers it has (x): sent the whole image"
    )


# Docker.ship_image's choices, with python-on-whales' image calls replaced by an engine kept in memory ---------------


class Images:
    """`client.image` of one engine: images by tag with their layers; `load` keeps what it was given."""

    def __init__(self, tmp: Path, layers: dict[str, list[str]], refuse_thin: bool = False) -> None:
        self.tmp, self.layers, self.refuse_thin = tmp, layers, refuse_thin
        self.loaded: list[set[str]] = []  # the member names of each archive loaded

    def inspect(self, image: str) -> ImageStub:
        return ImageStub(self.layers[image])

    def list(self, all: bool = False) -> list[ImageStub]:
        assert all  # intermediate images hold chains too
        return [ImageStub(v, k) for k, v in self.layers.items()]

    def inspect_json(self, kind: str, ids: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        """`docker image inspect ID...` (Docker._inspect_existing) of the images listed."""
        assert kind == "image"
        return [{"Id": i, "RootFS": {"Type": "layers", "Layers": self.layers[i]}} for i in ids]

    def save(self, image: str, output: Path | None = None) -> Iterator[bytes] | None:
        dirs = [layer.removeprefix("sha256:") for layer in self.layers[image]]
        saved = saved_image(self.tmp / f"saved-{len(dirs)}.tar", dirs)
        if output is None:
            return iter([saved.read_bytes()])
        output.write_bytes(saved.read_bytes())
        return None

    def load(self, source: Path | Iterator[bytes], quiet: bool = False) -> builtins.list[str]:
        data = source.read_bytes() if isinstance(source, Path) else b"".join(source)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            names = {m.name for m in archive}
        self.loaded.append(names)
        if self.refuse_thin and not all(f"{d}/layer.tar" in names for d in ("aa", "bb", "cc")):
            raise DockerException(["docker", "load"], 1, b"", b"open /var/lib/docker/tmp/aa/layer.tar: no such file")
        return ["shop-app:r2"]


@dataclass
class ImageStub:
    layers: list[str]
    id: str = ""

    @property
    def root_fs(self) -> Any:
        return SimpleNamespace(layers=self.layers)


def engines(
    tmp_path: Path, theirs: dict[str, list[str]], driver: str = "overlay2", **kw: bool
) -> tuple[Docker, Docker, Images]:
    here = Docker("shop", [], engine=EngineTarget(Target("unix:///here.sock", "--host")))
    there = Docker("shop", [], engine=EngineTarget(Target("ssh://vps", "--host")))
    here.client = SimpleNamespace(image=Images(tmp_path, {"shop-app:r2": BASE}))  # type: ignore[assignment]
    images = Images(tmp_path, theirs, **kw)
    there.client = SimpleNamespace(image=images)  # type: ignore[assignment]
    there._inspect_existing = images.inspect_json  # type: ignore[method-assign]
    status = (
        [["Backing Filesystem", "extfs"]] if driver == "overlay2" else [["driver-type", "io.containerd.snapshotter.v1"]]
    )
    there.engine_info = lambda: {"Driver": driver, "DriverStatus": status}  # type: ignore[method-assign]
    return here, there, images


def test_a_target_with_the_base_image_gets_only_the_layers_it_lacks(tmp_path: Path) -> None:
    here, there, images = engines(tmp_path, {"python:3.13-slim": BASE[:2]})
    shipped = here.ship_image("shop-app:r2", there)
    assert (shipped.layers, shipped.reused, shipped.note) == (3, 2, "")
    (loaded,) = images.loaded
    assert "cc/layer.tar" in loaded and not {"aa/layer.tar", "bb/layer.tar"} & loaded
    assert shipped.sent < (tmp_path / "saved-3.tar").stat().st_size


def test_an_empty_target_gets_the_whole_image_streamed(tmp_path: Path) -> None:
    here, there, images = engines(tmp_path, {})
    shipped = here.ship_image("shop-app:r2", there)
    assert (shipped.layers, shipped.reused) == (3, 0)
    assert shipped.sent == (tmp_path / "saved-3.tar").stat().st_size
    assert {"aa/layer.tar", "bb/layer.tar", "cc/layer.tar"} <= images.loaded[0]


def test_a_containerd_store_gets_the_whole_image_without_asking_for_its_layers(tmp_path: Path) -> None:
    here, there, images = engines(tmp_path, {"python:3.13-slim": BASE[:2]}, driver="overlayfs")
    images.list = lambda all=False: pytest.fail("listed the target's images")  # type: ignore[method-assign]
    assert here.ship_image("shop-app:r2", there).reused == 0
    assert {"aa/layer.tar", "bb/layer.tar", "cc/layer.tar"} <= images.loaded[0]


def test_an_engine_that_refuses_the_thin_archive_gets_the_whole_image_and_it_is_said(tmp_path: Path) -> None:
    here, there, images = engines(tmp_path, {"python:3.13-slim": BASE[:2]}, refuse_thin=True)
    shipped = here.ship_image("shop-app:r2", there)
    assert len(images.loaded) == 2 and "aa/layer.tar" in images.loaded[1]
    assert shipped.reused == 0
    assert shipped.note == (
        "the engine refused the archive without the layers it has (open /var/lib/docker/tmp/aa/layer.tar: no such "
        "file): sent the whole image"
    )
