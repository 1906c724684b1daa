"""`download_dataset` end to end against a local HTTP server on 127.0.0.1 (nothing reaches the internet).

The server serves small files the tests write in the real formats (gzipped IDX, SVHN `.mat`, the CIFAR-10
and STL-10 `.tar.gz` archives); the expected md5s are overridden with `checksums=` since the files are fakes.
"""
import functools, hashlib, io, tarfile, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperrep_nb.core import HyperrepError
from hyperrep_nb import data
from hyperrep_nb.data import (SOURCES, download_dataset, file_md5, load_dataset, write_cifar_batch, write_idx,
                              write_stl10, write_svhn_mat)

RNG = np.random.default_rng(0)


class _Handler(SimpleHTTPRequestHandler):
    "Serves the test folder; `/truncated/NAME` announces NAME's full length but sends only half of it."

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/truncated/"):
            payload = (Path(self.directory) / self.path.rsplit("/", 1)[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):  # keep pytest output quiet
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    "A local HTTP server on a free port: yields (served folder, base URL, list of requested paths)."
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    httpd.daemon_threads = True
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{httpd.server_address[1]}/", httpd.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _md5s(folder, names):
    return {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in names}


def _serve_mnist(served, n_train=40, n_test=15):
    "Gzipped IDX files as on the MNIST mirror; returns their md5s."
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(served / f"{split}-images-idx3-ubyte.gz", RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8), gzip=True)
        write_idx(served / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8), gzip=True)
    return _md5s(served, SOURCES["mnist"]["files"])


def _no_leftovers(root):
    "No temporary download or extraction files remain."
    root = Path(root)
    return not root.exists() or not [p for p in root.rglob("*") if p.name.startswith(".")]


def _tar_folder(archive, folder, arcname):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname)


def test_mnist_download_and_load(server, tmp_path):
    served, url, requests = server
    sums = _serve_mnist(served)
    root = tmp_path / "mnist"
    paths = download_dataset("mnist", root, base_url=url, progress=True, checksums=sums)
    assert [p.name for p in paths] == list(SOURCES["mnist"]["files"])
    for path in paths:
        assert path.parent == root and path.read_bytes() == (served / path.name).read_bytes()
        assert file_md5(path) == sums[path.name]
    assert len(requests) == 4 and _no_leftovers(root)
    ds = load_dataset("mnist", root=root, device="cpu")
    assert tuple(ds.x_train.shape) == (40, 1, 28, 28) and tuple(ds.x_test.shape) == (15, 1, 28, 28)
    assert ds.y_train.dtype == torch.int64 and ds.y_test.tolist() == [i % 10 for i in range(15)]
    assert abs(ds.x_train.mean().item()) < 1e-4 and abs(ds.x_train.std(correction=0).item() - 1) < 1e-3


def test_verified_files_are_not_downloaded_again(server, tmp_path):
    served, url, requests = server
    sums = _serve_mnist(served)
    root = tmp_path / "mnist"
    download_dataset("mnist", root, base_url=url, progress=False, checksums=sums)
    assert len(requests) == 4
    mtimes = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    download_dataset("mnist", root, base_url=url, progress=False, checksums=sums)
    assert len(requests) == 4  # nothing fetched
    assert {p.name: p.stat().st_mtime_ns for p in root.iterdir()} == mtimes
    # a damaged local file is fetched again, and only that one
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    download_dataset("mnist", root, base_url=url, progress=False, checksums=sums)
    assert requests[4:] == ["/t10k-labels-idx1-ubyte.gz"]
    assert file_md5(root / "t10k-labels-idx1-ubyte.gz") == sums["t10k-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    served, url, _ = server
    sums = _serve_mnist(served)
    root = tmp_path / "mnist"
    wrong = {**sums, "train-images-idx3-ubyte.gz": "0" * 32}
    with pytest.raises(HyperrepError, match="checksum mismatch for train-images-idx3-ubyte.gz") as error:
        download_dataset("mnist", root, base_url=url, progress=False, checksums=wrong)
    assert "expected " + "0" * 32 in str(error.value)
    assert not (root / "train-images-idx3-ubyte.gz").exists() and _no_leftovers(root)
    # the table's real checksums do not match the fakes either
    with pytest.raises(HyperrepError, match="checksum mismatch"):
        download_dataset("mnist", tmp_path / "real_sums", base_url=url, progress=False)
    assert not (tmp_path / "real_sums" / "train-images-idx3-ubyte.gz").exists() and _no_leftovers(tmp_path / "real_sums")


def test_truncated_download(server, tmp_path):
    served, url, _ = server
    sums = _serve_mnist(served)
    root = tmp_path / "mnist"
    with pytest.raises(HyperrepError, match="truncated") as error:
        download_dataset("mnist", root, base_url=url + "truncated/", progress=False, checksums=sums)
    assert "train-images-idx3-ubyte.gz" in str(error.value)
    assert not (root / "train-images-idx3-ubyte.gz").exists() and _no_leftovers(root)


def test_missing_file_404(server, tmp_path):
    served, url, _ = server
    sums = _serve_mnist(served)
    (served / "t10k-images-idx3-ubyte.gz").unlink()
    root = tmp_path / "mnist"
    with pytest.raises(HyperrepError, match="HTTP 404") as error:
        download_dataset("mnist", root, base_url=url, progress=False, checksums=sums)
    assert "t10k-images-idx3-ubyte.gz" in str(error.value)
    assert not (root / "t10k-images-idx3-ubyte.gz").exists() and _no_leftovers(root)
    # the files before it were verified and kept; loading reports the missing one
    assert (root / "train-labels-idx1-ubyte.gz").is_file()
    with pytest.raises(HyperrepError, match="download=True"):
        load_dataset("mnist", root=root)


def test_unreachable_host(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    # a port nobody listens on: bind one, note it, close it
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HyperrepError, match="could not download"):
        download_dataset("svhn", tmp_path / "svhn", base_url=f"http://127.0.0.1:{port}/", progress=False)
    assert _no_leftovers(tmp_path / "svhn")


def test_load_dataset_downloads_when_asked(server, tmp_path, monkeypatch):
    served, url, requests = server
    sums = _serve_mnist(served, n_train=20, n_test=10)
    monkeypatch.setitem(SOURCES, "fashion_mnist", {"url": "http://unused.invalid/", "files": sums})
    root = tmp_path / "fashion"
    with pytest.raises(HyperrepError, match="download=True") as error:
        load_dataset("fashion_mnist", root=root)
    assert str(root) in str(error.value) and not requests
    ds = load_dataset("fashion_mnist", root=root, device="cpu", download=True, base_url=url)
    assert (ds.name, ds.n_train, ds.n_test, ds.channels) == ("fashion_mnist", 20, 10, 1)
    assert len(requests) == 4
    load_dataset("fashion_mnist", root=root, device="cpu", download=True, base_url=url)
    assert len(requests) == 4  # files present: no download at all


def test_svhn_download(server, tmp_path):
    served, url, _ = server
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3])
    write_svhn_mat(served / "train_32x32.mat", RNG.integers(0, 256, (12, 3, 32, 32), dtype=np.uint8), labels)
    write_svhn_mat(served / "test_32x32.mat", RNG.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8), labels[:5])
    root = tmp_path / "svhn"
    download_dataset("svhn", root, base_url=url, progress=False,
                     checksums=_md5s(served, ["train_32x32.mat", "test_32x32.mat"]))
    ds = load_dataset("svhn", root=root, device="cpu")
    assert tuple(ds.x_train.shape) == (12, 1, 28, 28) and ds.y_train.tolist() == labels.tolist()


def test_cifar10_archive_download_and_extract(server, tmp_path):
    served, url, requests = server
    batches = served / "build" / "cifar-10-batches-py"
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(batches / name, RNG.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8), [i % 10, 1, 2, 3])
    (batches / "batches.meta").write_bytes(b"meta")
    _tar_folder(served / "cifar-10-python.tar.gz", batches, "cifar-10-batches-py")
    root = tmp_path / "cifar"
    sums = _md5s(served, ["cifar-10-python.tar.gz"])
    paths = download_dataset("cifar10", root, base_url=url, progress=False, checksums=sums)
    assert paths == [root / "cifar-10-python.tar.gz"]
    assert (root / "cifar-10-batches-py" / "test_batch").is_file() and _no_leftovers(root)
    ds = load_dataset("cifar10", root=root, device="cpu")
    assert tuple(ds.x_train.shape) == (20, 3, 28, 28) and ds.y_test.tolist() == [5, 1, 2, 3]
    assert len(ds.mean) == 3 and torch.allclose(ds.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    # archive verified and extracted: nothing fetched; a deleted extraction is redone from the archive
    download_dataset("cifar10", root, base_url=url, progress=False, checksums=sums)
    assert len(requests) == 1
    import shutil
    shutil.rmtree(root / "cifar-10-batches-py")
    download_dataset("cifar10", root, base_url=url, progress=False, checksums=sums)
    assert len(requests) == 1 and (root / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_stl10_archive_download(server, tmp_path):
    served, url, _ = server
    folder = served / "build" / "stl10_binary"
    write_stl10(folder, RNG.integers(0, 256, (4, 3, 96, 96), dtype=np.uint8), [0, 1, 2, 9],
                RNG.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8), [5, 6])
    _tar_folder(served / "stl10_binary.tar.gz", folder, "stl10_binary")
    root = tmp_path / "stl"
    download_dataset("stl10", root, base_url=url, progress=False, checksums=_md5s(served, ["stl10_binary.tar.gz"]))
    ds = load_dataset("stl10", root=root, device="cpu")
    assert tuple(ds.x_train.shape) == (4, 3, 28, 28) and ds.y_train.tolist() == [0, 1, 2, 9] and ds.y_test.tolist() == [5, 6]


def test_unsafe_archive_is_refused(server, tmp_path):
    served, url, _ = server
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name, content in (("cifar-10-batches-py/test_batch", b"ok"), ("../escaped.txt", b"evil")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    root = tmp_path / "deep" / "cifar"
    with pytest.raises(HyperrepError, match="refused member '../escaped.txt'"):
        download_dataset("cifar10", root, base_url=url, progress=False,
                         checksums=_md5s(served, ["cifar-10-python.tar.gz"]))
    assert not (tmp_path / "deep" / "escaped.txt").exists() and not (root / "cifar-10-batches-py").exists()
    assert _no_leftovers(root)


def test_bad_arguments():
    with pytest.raises(HyperrepError, match="digits, iris, wine, breast_cancer, mnist, fashion_mnist, svhn, cifar10, stl10"):
        download_dataset("imagenet", "unused")
    with pytest.raises(HyperrepError, match="expected file names of mnist"):
        download_dataset("mnist", "unused", checksums={"train.gz": "0" * 32})
    assert all(download_dataset(name, "unused") == [] for name in data.BUNDLED)   # shipped with scikit-learn
    assert data.DATASETS == ("digits", "iris", "wine", "breast_cancer", "mnist", "fashion_mnist", "svhn", "cifar10", "stl10")


def test_fetch_file_with_sha512(server, tmp_path):
    "The docs' npm packages are pinned by sha512: the same streaming download checks any hashlib digest."
    served, url, _ = server
    (served / "package.tgz").write_bytes(b"a pinned package")
    target = tmp_path / "out" / "package.tgz"
    data.fetch_file(f"{url}package.tgz", target, hashlib.sha512(b"a pinned package").hexdigest(), "sha512")
    assert target.read_bytes() == b"a pinned package"
    with pytest.raises(HyperrepError, match="checksum mismatch for other.tgz from .*package.tgz: sha512"):
        data.fetch_file(f"{url}package.tgz", tmp_path / "other.tgz", "0" * 128, "sha512")
    assert not (tmp_path / "other.tgz").exists()
