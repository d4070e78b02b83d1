"""Output folders: a local directory, or any fsspec URL the installed fsspec supports.

Local folders get atomic writes (temporary file, fsync, rename). Remote folders
(``s3://``, ``gs://``, ``memory://``, ...) get files uploaded whole once they are
complete; shards are staged in a local temporary folder first. Either way a shard's
stats file is written after its tar files, so its presence means the shard is complete.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from pathlib import Path

from mmprep.errors import MmprepError


def is_remote(url: str | os.PathLike) -> bool:
    text = os.fspath(url)
    return "://" in text and not text.startswith("file://")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TMP_SUFFIX = ".tmp"


def exclusive_temp(final: str | os.PathLike) -> Path:
    """A new, empty temporary file beside ``final`` that only the caller uses.

    Its name is random (``.NAME.XXXXXXXX.tmp``) and it is created with
    ``O_CREAT | O_EXCL | O_NOFOLLOW``: two writers of the same file never share a
    temporary, and a pre-planted file or symlink is never written through.
    """
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=TMP_SUFFIX, dir=final.parent)
    os.close(fd)
    return Path(name)


def commit_temp(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Rename a finished temporary onto ``final`` (replacing a symlink, never following
    it) and make the rename durable."""
    os.replace(tmp, final)
    _fsync_dir(Path(final).parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through an exclusive temporary file, fsync and rename."""
    final = Path(path)
    tmp = exclusive_temp(final)
    try:
        with open(tmp, "r+b") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        commit_temp(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LocalStore:
    remote = False

    def __init__(self, root: str | os.PathLike):
        text = os.fspath(root)
        self.root = Path(text[len("file://"):] if text.startswith("file://") else text)
        self.url = str(self.root)

    def mkdirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def write_bytes(self, name: str, data: bytes) -> None:
        atomic_write_bytes(self.root / name, data)

    def list(self, pattern: str = "*") -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if fnmatch.fnmatch(p.name, pattern))

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size

    def open(self, name: str, mode: str = "rb"):
        return open(self.root / name, mode)

    def staging_dir(self) -> Path:
        return self.root

    def temp_for(self, name: str) -> Path:
        """An exclusive temporary for the file ``name`` (see ``exclusive_temp``)."""
        return exclusive_temp(self.root / name)

    def commit(self, local: Path, name: str) -> None:
        """Make finished local file ``local`` visible as ``name``."""
        commit_temp(local, self.root / name)

    def release_staging(self) -> None:
        pass


class FsspecStore:
    remote = True

    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError as exc:
            raise MmprepError(f"{url}: remote outputs need fsspec (pip install fsspec)") from exc
        try:
            self.fs, self.base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise MmprepError(f"{url}: this fsspec cannot open it ({exc})") from exc
        self.url = url.rstrip("/")
        self._staging: Path | None = None

    def _full(self, name: str) -> str:
        return f"{self.base.rstrip('/')}/{name}"

    def mkdirs(self) -> None:
        self.fs.makedirs(self.base, exist_ok=True)

    def path(self, name: str) -> str:
        return f"{self.url}/{name}"

    def exists(self, name: str) -> bool:
        return self.fs.exists(self._full(name))

    def read_bytes(self, name: str) -> bytes:
        return self.fs.cat_file(self._full(name))

    def write_bytes(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self._full(name), data)

    def list(self, pattern: str = "*") -> list[str]:
        try:
            entries = self.fs.ls(self.base, detail=False)
        except FileNotFoundError:
            return []
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
        return sorted(n for n in names if fnmatch.fnmatch(n, pattern))

    def remove(self, name: str) -> None:
        if self.fs.exists(self._full(name)):
            self.fs.rm_file(self._full(name))

    def size(self, name: str) -> int:
        return int(self.fs.size(self._full(name)))

    def open(self, name: str, mode: str = "rb"):
        return self.fs.open(self._full(name), mode)

    def staging_dir(self) -> Path:
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="mmprep-stage-"))
        return self._staging

    def temp_for(self, name: str) -> Path:
        """An exclusive local temporary for the remote file ``name``."""
        return exclusive_temp(self.staging_dir() / name)

    def commit(self, local: Path, name: str) -> None:
        self.fs.put_file(str(local), self._full(name))
        Path(local).unlink(missing_ok=True)

    def release_staging(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None


Store = LocalStore | FsspecStore


def open_store(url: str | os.PathLike) -> Store:
    return FsspecStore(os.fspath(url)) if is_remote(url) else LocalStore(url)
