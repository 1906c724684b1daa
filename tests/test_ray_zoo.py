"""Zoos on a real local Ray instance through `hyperrep zoo --ray local`: a shard's worker killed mid-epoch (Ray retries,
the shard resumes), the driver interrupted mid-run (rerun resumes every shard), both equal to the single-process zoo
bitwise; an unreachable cluster refused at once; nothing left running afterwards."""
import json, os, signal, subprocess, time
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")
from hyperrep_nb.zoo import Zoo, zoo_config, train_zoo
from helpers import HYPERREP, last_epoch

ARGS = ["zoo", "--models", "8", "--epochs", "6", "--chunk-size", "4", "--ray", "local", "--shards", "2", "--quiet"]


def ray_processes() -> set[int]:
    "PIDs of Ray's own processes on this machine (the GCS, raylets, workers, agents)."
    found = subprocess.run(["pgrep", "-f", "gcs_server|raylet|ray::|default_worker.py"], capture_output=True, text=True).stdout
    return {int(pid) for pid in found.split()}


def wait_for_epoch(folder: Path, epoch: int, process, seconds=240):
    deadline = time.time() + seconds
    while last_epoch(folder) < epoch and time.time() < deadline and process.poll() is None: time.sleep(0.05)
    assert last_epoch(folder) >= epoch, f"{folder} never reached epoch {epoch}"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    "The same zoo trained in one process, with the same chunk size."
    return train_zoo(zoo_config("digits", models=8, epochs=6), tmp_path_factory.mktemp("single") / "zoo", device="cpu", chunk_size=4, progress=False)


def assert_same_zoo(zoo: Zoo, single: Zoo):
    assert zoo.epochs == single.epochs and not (zoo.path / "shards").exists()
    for epoch in single.epochs:
        assert torch.equal(zoo.population(epoch, "cpu").to_vector(), single.population(epoch, "cpu").to_vector()), epoch
    assert json.loads((zoo.path / "zoo.json").read_text()) == json.loads((single.path / "zoo.json").read_text())
    for metric, values in single.metrics.items(): assert abs(zoo.metrics[metric] - values).max() <= 2e-6, metric


def test_killed_worker_is_retried_and_its_shard_resumes(tmp_path, single):
    before = ray_processes()
    out = tmp_path / "zoo"
    driver = subprocess.Popen([HYPERREP, *ARGS, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_epoch(out / "shards" / "000", 2, driver)
    worker = json.loads((out / "shards" / "000" / "worker.json").read_text())["pid"]
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr
    assert "epoch   6" in stdout
    assert_same_zoo(Zoo(out), single)
    assert_nothing_left(before)


def test_interrupted_driver_then_rerun_resumes_every_shard(tmp_path, single):
    before = ray_processes()
    out = tmp_path / "zoo"
    # Ctrl-C must reach the driver even when this test runs in a background job, whose children inherit SIGINT ignored
    driver = subprocess.Popen([HYPERREP, *ARGS, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_epoch(out / "shards" / "001", 2, driver)
    driver.send_signal(signal.SIGINT)   # Ctrl-C: the driver stops Ray and says how to continue
    assert driver.wait(timeout=120) == 130
    committed = [last_epoch(out / "shards" / f"00{k}") for k in (0, 1)]
    assert all(0 <= c < 6 for c in committed), committed
    result = subprocess.run([HYPERREP, *ARGS, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert_same_zoo(Zoo(out), single)
    assert_nothing_left(before)


def assert_nothing_left(before: set[int], seconds: float = 120):
    "Ray's processes of the runs above have ended."
    deadline = time.time() + seconds
    while ray_processes() - before and time.time() < deadline: time.sleep(1)
    assert not ray_processes() - before, f"still running: {ray_processes() - before}"


def test_unreachable_cluster_is_one_line_exit_2(tmp_path):
    started = time.time()
    result = subprocess.run([HYPERREP, "zoo", "--models", "2", "--epochs", "1", "--ray", "127.0.0.1:9", "--out", str(tmp_path / "zoo")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot reach a Ray cluster at '127.0.0.1:9'"), result.stderr
    assert result.stderr.count("\n") == 1 and time.time() - started < 60 and not (tmp_path / "zoo").exists()
