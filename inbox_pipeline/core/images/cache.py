"""A cache of downloaded image bytes: an in-process LRU and an optional disk folder.

Raw bytes are cached, not converted output, so a change of conversion policy
still applies to cached images. Only successful downloads are cached.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from inbox_pipeline.core.images.fetch import FetchedImage

_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024
_MAGIC = b"inbox-pipeline-image-cache 1\n"


def cache_key(url: str, scope: str = "") -> str:
    return hashlib.sha256((url if not scope else f"{url}\0{scope}").encode("utf-8")).hexdigest()


class _MemoryLRU:
    def __init__(self, limit_bytes: int) -> None:
        self._limit = limit_bytes
        self._size = 0
        self._items: OrderedDict[str, FetchedImage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> FetchedImage | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: FetchedImage) -> None:
        if len(item.data) > self._limit // 4:
            return  # one big image must not flush everything else
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old.data)
            self._items[key] = item
            self._size += len(item.data)
            while self._size > self._limit:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted.data)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_memory = _MemoryLRU(_MEMORY_LIMIT_BYTES)


def clear_memory_cache() -> None:
    """Forget every image kept in this process (the disk cache stays)."""
    _memory.clear()


class ImageCache:
    """Looks in memory, then in ``folder`` (if any); stores in both."""

    def __init__(self, folder: Path | None, scope: str = "") -> None:
        self.folder = folder
        self.scope = scope

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / key[:2] / f"{key}.bin"

    def get(self, url: str) -> FetchedImage | None:
        key = cache_key(url, self.scope)
        item = _memory.get(key)
        if item is not None or self.folder is None:
            return item
        try:
            raw = self._path(key).read_bytes()
        except OSError:
            return None
        if not raw.startswith(_MAGIC):
            return None
        header, sep, data = raw[len(_MAGIC) :].partition(b"\n")
        if not sep:
            return None
        item = FetchedImage(url=url, content_type=header.decode("utf-8", "replace") or None, data=data)
        _memory.put(key, item)
        return item

    def put(self, url: str, item: FetchedImage) -> None:
        key = cache_key(url, self.scope)
        _memory.put(key, item)
        if self.folder is None:
            return
        path = self._path(key)
        content_type = (item.content_type or "").replace("\n", " ").encode("utf-8")
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a concurrent reader never sees half a file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + content_type + b"\n" + item.data)
            os.replace(tmp, path)
        except OSError:
            # A cache that cannot be written is only slower.
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
