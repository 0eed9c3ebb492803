"""The verified downloader against a real HTTP server on 127.0.0.1 serving files the test writes.

Every test checks exactly what is left under the raw directory afterwards: the verified files and
nothing else (no partial file at the final path, no temporary file).
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from vaepriors.data import download
from vaepriors.data.download import DownloadError, fetch_dataset
from vaepriors.data.registry import ENV_MIRRORS, DatasetSpec, FileSpec

NAME = "toy"


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) \
        + array.astype(np.uint8).tobytes()


RAW = {
    "images.gz": idx_bytes(np.arange(5 * 2 * 2).reshape(5, 2, 2)),
    "labels.gz": idx_bytes(np.array([0, 1, 2, 1, 0])),
}
GZ = {name: gzip.compress(raw, mtime=0) for name, raw in RAW.items()}
SPEC = DatasetSpec(
    name=NAME,
    files=tuple(FileSpec(name, gz_sha256=hashlib.sha256(GZ[name]).hexdigest(),
                         raw_sha256=hashlib.sha256(RAW[name]).hexdigest(), raw_size=len(RAW[name]))
                for name in RAW),
    sources=(),
    image_shape=(2, 2),
    n_classes=3,
)


class Server:
    """Routes: path -> (status, body, claimed Content-Length or None). Records request paths."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        routes, requests = self.routes, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                status, body, claimed = routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if claimed is None else claimed))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True  # a short body then ends with the connection

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, prefix: str, files: dict[str, bytes], claimed: dict[str, int] | None = None):
        for name, body in files.items():
            self.routes[f"/{prefix}/{name}"] = (200, body, (claimed or {}).get(name))
        return f"{self.url}/{prefix}/"


@pytest.fixture(scope="module")
def server_instance():
    server = Server()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def server(server_instance):
    server_instance.routes.clear()
    server_instance.requests.clear()
    return server_instance


@pytest.fixture
def toy(monkeypatch):
    """Point the downloader at the toy dataset with the given sources; no user mirrors."""
    monkeypatch.delenv(ENV_MIRRORS, raising=False)

    def use(*sources):
        spec = DatasetSpec(SPEC.name, SPEC.files, tuple(sources), SPEC.image_shape, SPEC.n_classes)
        monkeypatch.setattr(download, "get_dataset", lambda name: spec)
    return use


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused
    return f"http://127.0.0.1:{port}/mnist/"


def left_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


COMPLETE = [NAME, f"{NAME}/images.gz", f"{NAME}/labels.gz"]


def test_success(tmp_path, server, toy):
    toy(server.serve("good", GZ))
    paths = fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    assert {k: v.read_bytes() for k, v in paths.items()} == GZ
    assert left_under(tmp_path) == COMPLETE
    # Already present and verified: nothing is fetched again.
    server.requests.clear()
    fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    assert server.requests == []
    assert left_under(tmp_path) == COMPLETE


def test_sha256_mismatch(tmp_path, server, toy):
    wrong = {name: gzip.compress(raw, mtime=0)[:-8] + b"\0" * 8 for name, raw in RAW.items()}
    other = {name: gzip.compress(idx_bytes(np.zeros(3)), mtime=0) for name in RAW}
    toy(server.serve("wrong", other), server.serve("broken", wrong))
    with pytest.raises(DownloadError) as err:
        fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    msg = str(err.value)
    assert "sha256 mismatch" in msg and f"{server.url}/wrong/" in msg
    assert f"{server.url}/broken/" in msg and "not a valid gzip file" in msg
    assert left_under(tmp_path) == [NAME]


def test_truncated_body(tmp_path, server, toy):
    claimed = {name: len(body) + 1000 for name, body in GZ.items()}
    toy(server.serve("short", GZ, claimed))
    with pytest.raises(DownloadError) as err:
        fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    assert "truncated body" in str(err.value)
    assert left_under(tmp_path) == [NAME]


def test_first_source_404_then_second_works(tmp_path, server, toy):
    toy(f"{server.url}/missing/", server.serve("good", GZ))
    fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    assert server.requests == ["/missing/images.gz", "/good/images.gz",
                               "/missing/labels.gz", "/good/labels.gz"]
    assert left_under(tmp_path) == COMPLETE


def test_all_sources_down(tmp_path, server, toy):
    down = [closed_port_url(), closed_port_url()]
    missing_dir = tmp_path / "nowhere"
    toy(str(missing_dir), *down)
    raw = tmp_path / "raw"
    with pytest.raises(DownloadError) as err:
        fetch_dataset(NAME, raw, progress=False, timeout=5)
    msg = str(err.value)
    for source in [str(missing_dir), *down]:
        assert source in msg
    assert "not found" in msg and "cannot connect" in msg
    assert "images.gz" in msg and "labels.gz" in msg
    assert "data.mirrors" in msg and ENV_MIRRORS in msg  # how to supply the files by hand
    assert left_under(raw) == [NAME]


def test_mirror_directories_are_tried_first(tmp_path, server, toy, monkeypatch):
    toy(server.serve("good", GZ))
    config_mirror, env_mirror = tmp_path / "config_mirror", tmp_path / "env_mirror"
    (config_mirror / NAME).mkdir(parents=True)  # the per-dataset subfolder form
    env_mirror.mkdir()
    (config_mirror / NAME / "images.gz").write_bytes(GZ["images.gz"])
    (env_mirror / "labels.gz").write_bytes(GZ["labels.gz"])
    monkeypatch.setenv(ENV_MIRRORS, str(env_mirror))
    raw = tmp_path / "raw"
    fetch_dataset(NAME, raw, mirrors=[str(config_mirror)], progress=False, timeout=5)
    assert server.requests == []
    assert left_under(raw) == COMPLETE


def test_recompressed_copy_accepted_by_content_digest(tmp_path, server, toy):
    # Like Debian's Fashion-MNIST: other .gz bytes, identical decompressed IDX content.
    recompressed = {name: gzip.compress(raw, compresslevel=1, mtime=12345)
                    for name, raw in RAW.items()}
    assert all(recompressed[n] != GZ[n] for n in RAW)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, body in recompressed.items():
        (mirror / name).write_bytes(body)
    toy(str(mirror))
    raw = tmp_path / "raw"
    fetch_dataset(NAME, raw, progress=False)
    assert left_under(raw) == COMPLETE
    assert (raw / NAME / "images.gz").read_bytes() == recompressed["images.gz"]


def test_bad_file_at_final_path_is_replaced(tmp_path, server, toy):
    toy(server.serve("good", GZ))
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "images.gz").write_bytes(b"garbage")
    fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    assert (tmp_path / NAME / "images.gz").read_bytes() == GZ["images.gz"]
    assert left_under(tmp_path) == COMPLETE


def test_bad_file_removed_when_no_source_works(tmp_path, server, toy):
    toy(f"{server.url}/missing/")
    (tmp_path / NAME).mkdir()
    (tmp_path / NAME / "images.gz").write_bytes(b"garbage")
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_dataset(NAME, tmp_path, progress=False, timeout=5)
    assert left_under(tmp_path) == [NAME]
