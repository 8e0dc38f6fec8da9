"""Where a record's media live: relative paths against ``--media-root``, URLs when allowed."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from omnirm.errors import MediaError
from omnirm.media.limits import DEFAULT_LIMITS, MediaLimits, check_file

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CHUNK = 1 << 16


def is_url(reference: str) -> bool:
    """True for ``scheme://…`` strings (which are never treated as local paths)."""
    return bool(_SCHEME.match(reference))


def part_reference(part: Mapping[str, object]) -> str:
    """The ``path`` of a media part, else its ``url``."""
    reference = part.get("path") or part.get("url")
    if not isinstance(reference, str) or not reference:
        raise MediaError(f"a {part.get('type', 'media')} part needs a 'path' or a 'url'")
    return reference


class MediaResolver:
    """Turns media references into local files, refusing anything the user did not allow.

    - Relative paths resolve against ``root``; absolute paths are taken as they are.
    - After following symlinks, a path must lie inside ``root`` unless ``allow_outside_root``.
    - ``http(s)://`` URLs are refused unless ``allow_urls``; then each is downloaded once (with
      ``timeout`` seconds per network operation and at most ``limits.max_file_bytes`` bytes)
      into a cache folder, named by the SHA-256 of its content. The folder is a fresh temporary
      one unless ``cache_dir`` is given, and is removed by :meth:`close` (or garbage collection).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        allow_outside_root: bool = False,
        allow_urls: bool = False,
        limits: MediaLimits = DEFAULT_LIMITS,
        cache_dir: str | Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.allow_outside_root = allow_outside_root
        self.allow_urls = allow_urls
        self.limits = limits
        self.timeout = timeout
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._downloaded: dict[str, Path] = {}
        self._cleanup: weakref.finalize | None = None

    def resolve(self, reference: str | Path | Mapping[str, object]) -> Path:
        """The local file for a path, a URL, or a media part (its ``path``, else its ``url``).

        Raises :class:`MediaError` (with ``path`` as written) when the file is missing, outside
        the root, or a URL that is not allowed or fails to download.
        """
        if isinstance(reference, Mapping):
            reference = part_reference(reference)
        written = str(reference)
        if isinstance(reference, str) and is_url(reference):
            return self._download(reference)
        try:
            resolved = (self.root / written).resolve()
        except (OSError, ValueError, RuntimeError) as error:  # NUL bytes, symlink loops
            raise MediaError(f"invalid media path: {error}", path=written) from None
        if not self.allow_outside_root and not resolved.is_relative_to(self.root):
            raise MediaError(
                f"{written} resolves to {resolved}, outside the media root {self.root}; "
                "pass --allow-outside-root to allow it",
                path=written,
            )
        if not resolved.exists():
            raise MediaError(f"no such file: {resolved}", path=written)
        return resolved

    def close(self) -> None:
        """Remove the download cache folder if this resolver made it."""
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> MediaResolver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _cache(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = Path(tempfile.mkdtemp(prefix="omnirm-media-"))
            self._cleanup = weakref.finalize(
                self, shutil.rmtree, str(self._cache_dir), ignore_errors=True
            )
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        return self._cache_dir

    def _download(self, url: str) -> Path:
        if not self.allow_urls:
            raise MediaError(
                f"media URLs are not allowed ({url}); download the file and use a path, "
                "or allow URLs (--allow-urls)",
                path=url,
            )
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise MediaError(f"only http(s) URLs are supported, got {scheme}://", path=url)
        cached = self._downloaded.get(url)
        if cached is not None and cached.exists():
            return cached
        path = self._fetch(url)
        self._downloaded[url] = path
        return path

    def _fetch(self, url: str) -> Path:
        import urllib.error
        import urllib.request

        cache = self._cache()
        digest = hashlib.sha256()
        handle, tmp_name = tempfile.mkstemp(dir=cache, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                request = urllib.request.Request(url, headers={"User-Agent": "omnirm"})
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    final = urlsplit(response.geturl()).scheme.lower()
                    if final not in ("http", "https"):
                        raise MediaError(f"{url} redirected to a {final}:// URL", path=url)
                    declared = response.headers.get("Content-Length")
                    if declared is not None and declared.isdigit():
                        self.limits.enforce(
                            "max_file_bytes", int(declared), "download has {} bytes", url
                        )
                    size = 0
                    while chunk := response.read(_CHUNK):
                        size += len(chunk)
                        self.limits.enforce(
                            "max_file_bytes", size, "download has at least {} bytes", url
                        )
                        digest.update(chunk)
                        out.write(chunk)
            suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()
            target = cache / f"{digest.hexdigest()}{suffix}"
            os.replace(tmp_name, target)
            return check_file(target, self.limits)
        except urllib.error.HTTPError as error:
            raise MediaError(
                f"could not download {url}: HTTP {error.code} {error.reason}", path=url
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise MediaError(f"could not download {url}: {reason}", path=url) from None
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
