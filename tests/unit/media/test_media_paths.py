"""MediaLimits messages, check_file, and MediaResolver: media root, symlinks, URLs."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnirm.errors import MediaError
from omnirm.media import MediaLimits, MediaResolver
from omnirm.media.limits import check_file


def test_limit_message_names_value_limit_and_option() -> None:
    with pytest.raises(MediaError) as caught:
        MediaLimits().enforce("max_image_pixels", 120_000_000, "image has {} pixels", "a.png")
    assert caught.value.message == (
        "image has 120000000 pixels, over the limit of 67108864 (--max-image-pixels)"
    )
    assert caught.value.path == "a.png"
    assert str(caught.value).endswith("(a.png)")


def test_limit_at_the_bound_passes_and_seconds_read_naturally() -> None:
    limits = MediaLimits(max_audio_seconds=2.5)
    limits.enforce("max_audio_seconds", 2.5, "audio lasts {} s", "x.wav")
    with pytest.raises(MediaError, match=r"audio lasts 2\.75 s, over the limit of 2\.50"):
        limits.enforce("max_audio_seconds", 2.75, "audio lasts {} s", "x.wav")


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        MediaLimits().max_file_bytes = 1  # type: ignore[misc]


def test_check_file(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"x" * 10)
    assert check_file(tmp_path / "f.bin", MediaLimits()) == tmp_path / "f.bin"
    with pytest.raises(MediaError, match="no such file"):
        check_file(tmp_path / "missing.bin", MediaLimits())
    with pytest.raises(MediaError, match="not a file"):
        check_file(tmp_path, MediaLimits())
    with pytest.raises(MediaError, match=r"file has 10 bytes, .* \(--max-file-bytes\)"):
        check_file(tmp_path / "f.bin", MediaLimits(max_file_bytes=9))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with a.png and sub/b.png; secret.png next to root; a symlink out of root."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(b"a")
    (root / "sub" / "b.png").write_bytes(b"b")
    (tmp_path / "secret.png").write_bytes(b"s")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    (root / "inner-link.png").symlink_to(root / "a.png")
    return root


def test_relative_and_absolute_paths_inside_the_root(tree: Path) -> None:
    resolver = MediaResolver(tree)
    assert resolver.resolve("a.png") == tree / "a.png"
    assert resolver.resolve("sub/../sub/b.png") == tree / "sub" / "b.png"
    assert resolver.resolve(str(tree / "sub" / "b.png")) == tree / "sub" / "b.png"
    assert resolver.resolve({"type": "image", "path": "a.png"}) == tree / "a.png"
    assert resolver.resolve("inner-link.png") == tree / "a.png"


@pytest.mark.parametrize("reference", ["../secret.png", "link.png", "ABS"])
def test_paths_escaping_the_root_are_refused(tree: Path, reference: str) -> None:
    if reference == "ABS":
        reference = str(tree.parent / "secret.png")
    with pytest.raises(MediaError) as caught:
        MediaResolver(tree).resolve(reference)
    assert "outside the media root" in caught.value.message
    assert "--allow-outside-root" in caught.value.message
    assert caught.value.path == reference
    allowed = MediaResolver(tree, allow_outside_root=True).resolve(reference)
    assert allowed == tree.parent / "secret.png"


def test_missing_file(tree: Path) -> None:
    with pytest.raises(MediaError) as caught:
        MediaResolver(tree).resolve("nope.png")
    assert caught.value.message == f"no such file: {tree / 'nope.png'}"
    assert caught.value.path == "nope.png"


def test_part_without_reference(tree: Path) -> None:
    with pytest.raises(MediaError, match="needs a 'path' or a 'url'"):
        MediaResolver(tree).resolve({"type": "image"})


# --------------------------------------------------------------------------------------------
# URLs, against a local server on 127.0.0.1 only
# --------------------------------------------------------------------------------------------


class _Server:
    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "cat.png").write_bytes(b"\x89PNG fake image bytes")
    (folder / "big.bin").write_bytes(b"0" * 5000)
    running = _Server(folder)
    yield running
    running.stop()


def test_urls_are_refused_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as caught:
        MediaResolver(tmp_path).resolve({"type": "image", "url": "https://example.com/a.png"})
    assert "media URLs are not allowed" in caught.value.message
    assert "--allow-urls" in caught.value.message
    assert caught.value.path == "https://example.com/a.png"


def test_only_http_urls(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"only http\(s\) URLs are supported, got ftp://"):
        MediaResolver(tmp_path, allow_urls=True).resolve("ftp://127.0.0.1/a.png")


def test_download_is_content_addressed_cached_and_cleaned(tmp_path: Path, server: _Server) -> None:
    resolver = MediaResolver(tmp_path, allow_urls=True, timeout=5)
    url = f"{server.url}/cat.png"
    local = resolver.resolve({"type": "image", "url": url})
    content = b"\x89PNG fake image bytes"
    assert local.read_bytes() == content
    assert local.name == hashlib.sha256(content).hexdigest() + ".png"
    assert resolver.resolve(url) == local
    assert server.requests == ["/cat.png"]  # the second resolve used the cache
    cache = local.parent
    assert [p.name for p in cache.iterdir()] == [local.name]  # no partial files left
    resolver.close()
    assert not cache.exists()


def test_download_into_a_given_cache_dir_is_kept(tmp_path: Path, server: _Server) -> None:
    with MediaResolver(tmp_path, allow_urls=True, cache_dir=tmp_path / "cache") as resolver:
        local = resolver.resolve(f"{server.url}/cat.png")
    assert local.parent == tmp_path / "cache" and local.exists()


def test_download_byte_cap(tmp_path: Path, server: _Server) -> None:
    resolver = MediaResolver(tmp_path, allow_urls=True, limits=MediaLimits(max_file_bytes=1000))
    with pytest.raises(MediaError, match=r"download has 5000 bytes, over the limit of 1000"):
        resolver.resolve(f"{server.url}/big.bin")
    assert os.listdir(resolver._cache()) == []


def test_download_errors(tmp_path: Path, server: _Server) -> None:
    resolver = MediaResolver(tmp_path, allow_urls=True, timeout=5)
    with pytest.raises(MediaError, match=r"could not download .*: HTTP 404"):
        resolver.resolve(f"{server.url}/missing.png")
    port = server.httpd.server_address[1]
    server.stop()
    with pytest.raises(MediaError, match="could not download"):
        resolver.resolve(f"http://127.0.0.1:{port}/cat.png")


def test_invalid_paths(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for reference in ("nul\0byte.png", "a"):
        with pytest.raises(MediaError, match="invalid media path"):
            MediaResolver(tmp_path).resolve(reference)
