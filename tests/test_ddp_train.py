"""`hyperrep train` under a real 2-process torchrun with gloo: DistributedDataParallel follows one-process training
(same seed, dropout 0) to float round-off, rank 0 alone writes, and an interrupted run resumes to the same weights."""
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

BIN = Path(sys.executable).parent
HYPERREP, TORCHRUN = str(BIN / "hyperrep"), str(BIN / "torchrun")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*args):
    "Run a command, returning its stdout."
    result = subprocess.run(list(args), capture_output=True, text=True, env=ENV, timeout=600)
    if result.returncode != 0: raise AssertionError(result.stderr[-3000:])
    return result.stdout


def train(zoo: Path, out: Path, *extra, processes: int = 1) -> str:
    args = ["train", "--zoo", str(zoo), "--out", str(out), "--epochs", "3", "--window", "2", "3", "--dropout", "0", "--quiet", *extra]
    if processes == 1: return run(HYPERREP, *args)
    return run(TORCHRUN, "--standalone", "--nproc_per_node", str(processes), "--no-python", HYPERREP, *args)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "A tiny zoo, one-process training, 2-process training, and 2-process training stopped after epoch 1 and resumed."
    folder = tmp_path_factory.mktemp("ddp")
    run(HYPERREP, "zoo", "--models", "12", "--epochs", "3", "--quiet", "--out", str(folder / "zoo"))
    single = train(folder / "zoo", folder / "single")
    ddp = train(folder / "zoo", folder / "ddp", processes=2)
    stopped = train(folder / "zoo", folder / "resumed", "--until", "1", processes=2)
    resumed = train(folder / "zoo", folder / "resumed", processes=2)
    return folder, {"single": single, "ddp": ddp, "stopped": stopped, "resumed": resumed}


def history(bundle: Path) -> list[dict]: return json.loads((bundle / "metrics.json").read_text())["history"]


def test_two_processes_follow_one_process(runs):
    folder, out = runs
    assert out["ddp"].count("hyper-representation:") == 1, "one summary, from rank 0"
    for one, two in zip(history(folder / "single"), history(folder / "ddp"), strict=True):
        for key in ("train_loss", "train_reconstruction", "train_contrastive", "train_behaviour", "val_loss"):
            assert abs(one[key] - two[key]) <= 1e-4 * abs(one[key]) + 1e-6, (one["epoch"], key, one[key], two[key])
    single, ddp = load_file(folder / "single" / "autoencoder.safetensors"), load_file(folder / "ddp" / "autoencoder.safetensors")
    assert single.keys() == ddp.keys()
    for name in single: torch.testing.assert_close(ddp[name], single[name], atol=2e-4, rtol=1e-4)


def test_an_interrupted_two_process_run_resumes_to_the_same_weights(runs):
    folder, out = runs
    assert "stopped after epoch 1" in out["stopped"] and "hyper-representation:" in out["resumed"]
    straight, resumed = load_file(folder / "ddp" / "autoencoder.safetensors"), load_file(folder / "resumed" / "autoencoder.safetensors")
    for name in straight: assert torch.equal(straight[name], resumed[name]), name
    assert history(folder / "resumed") == history(folder / "ddp")
    leftovers = [p.name for p in (folder / "resumed").rglob("*.tmp*")]
    assert not leftovers, leftovers
