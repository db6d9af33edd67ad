"""Images on the engine: inspect, tag, push, and shipping one to another engine (`docker save` here, `docker load`
there, only the layers it lacks: engine/image_archive.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from python_on_whales.components.image.models import ImageRootFS

from ..errors import DockerError
from .docker_cli import CONFINED_PYTHON, ENGINE_HINT, DockerCLI
from .image_archive import shared_layers, thin_archive

if TYPE_CHECKING:
    from .docker import Docker  # the target engine's whole Docker, as callers pass it

__all__ = ["ImageCommands", "Shipped"]


@dataclass(frozen=True)
class Shipped:
    """What ship_image sent: bytes, and how many of the image's layers the target already had."""

    sent: int
    layers: int
    reused: int
    note: str = ""  # why the whole image went after all

    def describe(self) -> str:
        """ "52,428,800 bytes sent (2 of 5 layers; it had the other 3)" """
        if self.reused == 0:
            what = f"all {self.layers} layers" if self.layers != 1 else "its 1 layer"
        else:
            what = f"{self.layers - self.reused} of {self.layers} layers; it had the other {self.reused}"
        return f"{self.sent:,} bytes sent ({what}){f'; {self.note}' if self.note else ''}"


_NO_ROOT_FS = ImageRootFS()


class ImageCommands(DockerCLI):
    """The engine's images."""

    def image_exists(self, image: str) -> bool:
        return self._call(f"cannot inspect image {image}", lambda: self.client.image.exists(image), ENGINE_HINT)

    def image_user(self, image: str) -> str:
        """The image's USER (Config.User): "" means root."""
        return self._call(
            f"cannot inspect image {image}",
            lambda: str(self.client.image.inspect(image).config.user or ""),
            ENGINE_HINT,
        )

    def image_entrypoint(self, image: str) -> list[str]:
        """The image's ENTRYPOINT (Config.Entrypoint): [] when it has none."""
        return self._call(
            f"cannot inspect image {image}",
            lambda: list(self.client.image.inspect(image).config.entrypoint or []),
            ENGINE_HINT,
        )

    def probe_image(self, image: str, code: str, args: list[str], environment: dict[str, str]) -> str:
        """``python3 -c code args`` once in a throwaway container of ``image`` as the image's own user, in its working
        directory, with its environment and ``environment`` on top: no network, no capability, a read-only root."""
        return self._call(
            f"cannot run a check container of the app image {image}",
            lambda: str(self.client.container.run(image, ["-c", code, *args], envs=environment, **CONFINED_PYTHON)),
            "the app image needs python3 on its PATH (its healthcheck runs on it)",
        )

    def image_layers(self, image: str) -> list[str]:
        """The image's layers (RootFS diff IDs), base first."""
        return self._call(
            f"cannot inspect image {image}",
            lambda: list((self.client.image.inspect(image).root_fs or _NO_ROOT_FS).layers or []),
            ENGINE_HINT,
        )

    def all_image_layers(self) -> list[list[str]]:
        """The layers of every image on the engine, intermediate ones included: the chains it can reuse."""

        def read() -> list[list[str]]:
            ids = [image.id for image in self.client.image.list(all=True)]  # reading the IDs inspects nothing
            return [list((doc.get("RootFS") or {}).get("Layers") or []) for doc in self._inspect_existing("image", ids)]

        return self._call("cannot list the images", read, ENGINE_HINT)

    def stores_layers_in_containerd(self) -> bool:
        """True when the engine keeps images in containerd's store (a snapshotter, not a graph driver): its
        `docker load` wants every layer in the archive."""
        rows = self.engine_info().get("DriverStatus") or []
        return any(isinstance(row, list) and "io.containerd.snapshotter.v1" in row for row in rows)

    def ship_image(self, image: str, to: Docker) -> Shipped:
        """`docker save` ``image`` here, `docker load` it on ``to``'s engine (over its connection), leaving out the
        bottom layers ``to`` already has (engine/image_archive.py). An engine that refuses such an archive, or keeps
        its images in containerd, gets the whole image."""
        where = to.engine.describe()
        hint = "the image is saved from this machine's engine and loaded on the target's; check both answer"
        layers = self.image_layers(image)
        shared = 0 if to.stores_layers_in_containerd() else shared_layers(layers, to.all_image_layers())
        if shared == 0:
            return Shipped(self._stream_image(image, to, hint), len(layers), 0)
        with tempfile.TemporaryDirectory(prefix="composekit-ship-") as tmp:
            saved, thin = Path(tmp) / "image.tar", Path(tmp) / "thin.tar"
            self._call(f"cannot save the image {image}", lambda: self.client.image.save(image, output=saved), hint)
            thinned = thin_archive(saved, thin, shared)
            try:
                to._call(f"cannot ship the image {image} to {where}", lambda: to.client.image.load(thin, quiet=True))
                return Shipped(thin.stat().st_size, len(layers), thinned.left_out)
            except DockerError as exc:
                refused = (exc.stderr.splitlines() or [exc.summary])[-1]
            to._call(f"cannot ship the image {image} to {where}", lambda: to.client.image.load(saved, quiet=True), hint)
            note = f"the engine refused the archive without the layers it has ({refused}): sent the whole image"
            return Shipped(thin.stat().st_size + saved.stat().st_size, len(layers), 0, note)

    def _stream_image(self, image: str, to: Docker, hint: str) -> int:
        sent = 0

        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for chunk in self.client.image.save(image) or ():
                sent += len(chunk)
                yield chunk

        to._call(
            f"cannot ship the image {image} to {to.engine.describe()}",
            lambda: to.client.image.load(chunks(), quiet=True),
            hint,
        )
        return sent

    def image_id(self, image: str) -> str:
        return self._call(
            f"cannot inspect image {image}", lambda: str(self.client.image.inspect(image).id), ENGINE_HINT
        )

    def tag(self, image: str, tag: str) -> None:
        self._call(f"cannot tag {image} as {tag}", lambda: self.client.image.tag(image, tag), ENGINE_HINT)

    def untag(self, tag: str) -> None:
        """Remove the tag (and the image, when no other tag or container uses it)."""
        self._call(f"cannot remove the image tag {tag}", lambda: self.client.image.remove(tag, prune=True))

    def push(self, image: str) -> None:
        self._call(
            f"cannot push {image}",
            lambda: self.client.image.push(image, quiet=True),
            "check `docker login` for the registry named by `registry:` in composekit.yaml",
        )
