"""Pinning media: hostile URLs and files refused, clean copies stored, unpublished ones erased."""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import ipaddress
import os
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from sqlalchemy.engine import Engine
from sqlmodel import Session

from adapters import netguard
from monitor import files
from monitor.config import Settings
from monitor.services.media import (
    PinError,
    download_image,
    erase_unreferenced_media,
    pinned_file,
    pinned_name,
    store_image,
)
from tests.fakes.server import FakeServer, Reply


def jpeg_with_gps(width: int = 200, height: int = 100, orientation: int = 6) -> bytes:
    """A JPEG carrying a camera make, GPS coordinates and an orientation tag."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (51.0, 30.0, 0.0)}
    )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def png_bytes(width: int, height: int, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    colour = (10, 120, 10, 0) if mode == "RGBA" else (10, 120, 10)
    Image.new(mode, (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes that claim ten billion pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 1024)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.fixture
def settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(
        OUTBOUND_ALLOW_PRIVATE="true",
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
    )


@pytest.fixture
def strict_settings(configure: Callable[..., Settings], tmp_path: Path) -> Settings:
    return configure(
        OUTBOUND_ALLOW_PRIVATE="false",
        MEDIA_DIR=str(tmp_path / "media"),
        DATA_DIR=str(tmp_path / "data"),
    )


def serve(server: FakeServer, path: str, body: bytes, content_type: str = "image/jpeg") -> str:
    server.route("GET", path, lambda _request: Reply(200, body, {"Content-Type": content_type}))
    return server.url + path


def stored_files(media_dir: Path) -> list[Path]:
    return sorted(path for path in media_dir.rglob("*") if path.is_file())


# --- clean copies -------------------------------------------------------------------------


def test_pinned_copy_is_upright_metadata_free_and_size_capped(
    settings: Settings, fake_server: FakeServer
) -> None:
    url = serve(fake_server, "/photo.jpg", jpeg_with_gps(3000, 1500, orientation=6))

    pinned = store_image(download_image(url, settings=settings), settings.media_dir)

    # Orientation 6 means "rotate to portrait": 3000x1500 becomes 1500x3000, capped to 1200x2400.
    assert (pinned.width, pinned.height) == (1200, 2400)
    assert pinned.widths == (320, 640, 1200)
    for width in pinned.widths:
        path = pinned_file(settings.media_dir, pinned_name(pinned.digest, width))
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.width == width
            exif = image.getexif()
            assert len(exif) == 0
            assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
            assert "exif" not in image.info and "icc_profile" not in image.info
        assert path.read_bytes().find(b"TestCam") == -1
    assert not [p for p in stored_files(settings.media_dir) if p.name.startswith(".tmp-")]


def test_a_phone_sized_photo_gets_every_rendition(settings: Settings) -> None:
    pinned = store_image(jpeg_with_gps(4032, 3024, orientation=1), settings.media_dir)

    assert (pinned.width, pinned.height) == (1280, 960)
    assert pinned.widths == (320, 640, 1280)
    with Image.open(pinned_file(settings.media_dir, pinned_name(pinned.digest, 320))) as small:
        assert small.size == (320, 240)


def test_transparent_png_is_flattened_on_white(settings: Settings) -> None:
    pinned = store_image(png_bytes(50, 40, "RGBA"), settings.media_dir)

    assert pinned.widths == (50,)
    with Image.open(pinned_file(settings.media_dir, pinned_name(pinned.digest, 50))) as image:
        assert image.mode == "RGB"
        assert image.getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)


def test_same_original_is_stored_once_by_content_hash(settings: Settings) -> None:
    data = png_bytes(700, 300)
    first = store_image(data, settings.media_dir)
    second = store_image(data, settings.media_dir)

    assert first == second
    assert len(stored_files(settings.media_dir)) == 3  # 320, 640, 700


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><script>alert(1)</script></html>", "not an image"),
        (jpeg_with_gps()[:200], "not an image"),
        (b"", "not an image"),
        (png_bomb(), "too many pixels"),
        (png_bomb(8000, 8000), "the limit is 16,000,000 pixels for PNG"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
    ],
    ids=["html-as-jpeg", "truncated-jpeg", "empty", "bomb", "over-budget", "eps"],
)
def test_files_that_are_not_safe_images_are_refused(
    settings: Settings, fake_server: FakeServer, body: bytes, message: str
) -> None:
    url = serve(fake_server, "/fake.jpg", body, content_type="image/jpeg")

    with pytest.raises(PinError, match=message):
        store_image(download_image(url, settings=settings), settings.media_dir)
    assert stored_files(settings.media_dir) == []


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", disk_full)

    with pytest.raises(PinError, match="the disk is full"):
        store_image(png_bytes(100, 100), settings.media_dir)
    assert stored_files(settings.media_dir) == []


# --- the download guard -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/image.jpg",
        "javascript:alert(1)",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/image.jpg",
        "http://[::ffff:127.0.0.1]/image.jpg",
        "http://0.0.0.0/image.jpg",
        "http://10.0.0.1/image.jpg",
        "http://localhost/image.jpg",
        # The security review's three IPv6 forms that passed the filter:
        "http://[::127.0.0.1]/image.jpg",  # IPv4-compatible (embedded IPv4)
        "http://[64:ff9b:1::a00:1]/image.jpg",  # local-use NAT64 of 10.0.0.1
        "http://[fec0::1]/image.jpg",  # site-local
        "not a url",
        "",
    ],
)
def test_private_and_non_web_addresses_are_refused(strict_settings: Settings, url: str) -> None:
    with pytest.raises(PinError):
        download_image(url, settings=strict_settings)


def test_loopback_media_server_is_refused_without_a_request(
    strict_settings: Settings, fake_server: FakeServer
) -> None:
    url = serve(fake_server, "/photo.jpg", jpeg_with_gps())

    with pytest.raises(PinError, match="private, loopback"):
        download_image(url, settings=strict_settings)
    assert fake_server.hits() == 0


def test_every_redirect_hop_is_checked(
    strict_settings: Settings, fake_server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Treat the fake server's address as if it were a public CDN; everything else stays private.
    monkeypatch.setattr(netguard, "is_public", lambda address: str(address) == "127.0.0.1")
    port = fake_server.url.rsplit(":", 1)[1]
    fake_server.route(
        "GET", "/hop1", lambda _r: Reply(302, b"", {"Location": f"http://127.0.0.2:{port}/hop2"})
    )
    fake_server.route(
        "GET", "/metadata", lambda _r: Reply(301, b"", {"Location": "http://169.254.169.254/"})
    )
    fake_server.route("GET", "/to-file", lambda _r: Reply(302, b"", {"Location": "file:///x"}))

    with pytest.raises(PinError, match=r"127\.0\.0\.2"):
        download_image(fake_server.url + "/hop1", settings=strict_settings)
    with pytest.raises(PinError, match=r"169\.254\.169\.254"):
        download_image(fake_server.url + "/metadata", settings=strict_settings)
    with pytest.raises(PinError, match="http"):
        download_image(fake_server.url + "/to-file", settings=strict_settings)
    assert fake_server.hits() == 3


def test_redirects_are_followed_then_capped(settings: Settings, fake_server: FakeServer) -> None:
    data = png_bytes(20, 20)
    serve(fake_server, "/final.png", data, "image/png")
    fake_server.route("GET", "/moved", lambda _r: Reply(302, b"", {"Location": "/final.png"}))
    fake_server.route("GET", "/loop", lambda _r: Reply(302, b"", {"Location": "/loop"}))

    assert download_image(fake_server.url + "/moved", settings=settings) == data
    with pytest.raises(PinError, match="redirected more than"):
        download_image(fake_server.url + "/loop", settings=settings)


def test_error_statuses_and_resets_are_reported(
    settings: Settings, fake_server: FakeServer
) -> None:
    url = serve(fake_server, "/photo.jpg", jpeg_with_gps())
    fake_server.fail("status", status=404, path="/photo.jpg")
    fake_server.fail("reset", path="/photo.jpg")

    with pytest.raises(PinError, match="HTTP 404"):
        download_image(url, settings=settings)
    with pytest.raises(PinError, match="could not download"):
        download_image(url, settings=settings)


def test_declared_oversized_body_is_refused_before_reading(
    settings: Settings, fake_server: FakeServer
) -> None:
    url = serve(fake_server, "/big.jpg", b"\xff" * 5000)

    with pytest.raises(PinError, match="the limit is 4,096"):
        download_image(url, settings=settings, max_bytes=4096)


def test_a_trickling_body_is_abandoned_at_the_deadline(
    configure: Callable[..., Settings], fake_server: FakeServer, tmp_path: Path
) -> None:
    settings = configure(
        OUTBOUND_ALLOW_PRIVATE="true", HTTP_TIMEOUT_SECONDS="0.3", MEDIA_DIR=str(tmp_path)
    )
    url = serve(fake_server, "/slow.jpg", jpeg_with_gps())
    fake_server.fail("drip", seconds=0.05, path="/slow.jpg")  # each byte well within the timeout

    with pytest.raises(PinError, match="downloading too slowly"):
        download_image(url, settings=settings)


def test_a_compressed_body_is_not_inflated(settings: Settings, fake_server: FakeServer) -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)
    fake_server.route(
        "GET",
        "/zipped.jpg",
        lambda _r: Reply(200, bomb, {"Content-Type": "image/jpeg", "Content-Encoding": "gzip"}),
    )

    body = download_image(fake_server.url + "/zipped.jpg", settings=settings, max_bytes=1_000_000)

    assert body == bomb
    with pytest.raises(PinError, match="not an image"):
        store_image(body, settings.media_dir)


@pytest.fixture
def endless_server() -> Iterator[str]:
    """Answers with an image content type and then zeros forever (a '2 GB' body, no length)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n\r\n")
                chunk = b"\0" * 65536
                with contextlib.suppress(OSError):
                    for _ in range(2**31 // len(chunk)):
                        connection.sendall(chunk)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/huge.jpg"
    stop.set()
    thread.join(5)
    listener.close()


def test_streamed_body_is_cut_at_the_cap(settings: Settings, endless_server: str) -> None:
    with pytest.raises(PinError, match="over the 1,048,576-byte limit"):
        download_image(endless_server, settings=settings, max_bytes=1024 * 1024)


# --- erasing what no held post shows (staging and approval: test_staging.py) -----------


def _age(paths: list[Path], seconds: float = 3600) -> None:
    old = time.time() - seconds
    for path in paths:
        os.utime(path, (old, old))


def test_young_files_survive_an_erase_for_approvals_in_flight(
    gallery_engine: Engine, settings: Settings
) -> None:
    pinned = store_image(png_bytes(100, 100), settings.media_dir)
    stray = settings.media_dir / pinned.digest[:2] / ".tmp-half-written.jpg"
    stray.write_bytes(b"partial")
    mine_not = settings.media_dir / "notes.txt"
    mine_not.write_text("not ours")

    with Session(gallery_engine) as session:
        assert erase_unreferenced_media(session, settings) == 0
        _age(stored_files(settings.media_dir))
        assert erase_unreferenced_media(session, settings) == 2

    assert stored_files(settings.media_dir) == [mine_not]


@pytest.mark.parametrize(
    "address", ["::127.0.0.1", "::10.0.0.1", "64:ff9b:1::a00:1", "64:ff9b:1::808:808", "fec0::1"]
)
def test_ipv6_wrappers_of_private_networks_are_not_public(address: str) -> None:
    assert not netguard.is_public(ipaddress.ip_address(address))


def test_a_small_png_of_a_huge_area_is_refused_before_decoding(settings: Settings) -> None:
    """The finding: a 140 KiB PNG cost about 630 MiB of memory to decode."""
    flat = png_bomb(5000, 4000)  # 20 million pixels in a few hundred bytes
    assert len(flat) < 200_000
    with pytest.raises(PinError, match="the limit is 16,000,000 pixels for PNG"):
        store_image(flat, settings.media_dir)
