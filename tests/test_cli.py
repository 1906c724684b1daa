"""The `hyperrep` command end to end: zoo training that is killed and resumed, info, errors, benchmarks."""
import json, signal, subprocess, time

import pytest
import torch

from hyperrep_nb.zoo import Zoo
from helpers import HYPERREP, run, last_epoch


def test_killed_zoo_training_resumes_to_the_same_weights(tmp_path):
    args = ["zoo", "--preset", "digits", "--models", "24", "--epochs", "4", "--quiet"]
    run(*args, "--out", str(tmp_path / "straight"))
    killed = tmp_path / "killed"
    process = subprocess.Popen([HYPERREP, *args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while last_epoch(killed) < 1 and time.time() < deadline and process.poll() is None: time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = last_epoch(killed)
    assert 1 <= committed < 4, f"the run should have been killed mid-training, it had committed epoch {committed}"
    assert len(Zoo(killed).population(committed, device="cpu")) == 24   # what was written is intact: every model of the committed epoch reads back
    result = run(*args, "--out", str(killed))
    assert "epoch   4" in result.stdout
    straight, resumed = Zoo(tmp_path / "straight"), Zoo(killed)
    torch.testing.assert_close(resumed.population(4, "cpu").to_vector(), straight.population(4, "cpu").to_vector())
    assert (resumed.metrics["test_accuracy"] == straight.metrics["test_accuracy"]).all()


def test_info_summarises_a_zoo(tmp_path):
    run("zoo", "--models", "6", "--epochs", "2", "--quiet", "--out", str(tmp_path / "zoo"))
    out = run("info", str(tmp_path / "zoo")).stdout
    for expected in ("paper_cnn_1ch_tanh", "2464 parameters", "models: 6", "epochs: 0..2", "trained by: torch (epochs 1-2)", "splits:", "epoch   2:"):
        assert expected in out, out


def test_a_zoo_trained_in_parts_on_the_fused_kernel_records_it_and_equals_one_trained_straight(tmp_path):
    args = ["zoo", "--models", "6", "--epochs", "3", "--trainer", "fused", "--quiet"]
    run(*args, "--until", "1", "--out", str(tmp_path / "parts"))
    out = run(*args, "--out", str(tmp_path / "parts")).stdout
    run(*args, "--out", str(tmp_path / "straight"))
    parts, straight = Zoo(tmp_path / "parts"), Zoo(tmp_path / "straight")
    assert torch.equal(parts.population(3, "cpu").to_vector(), straight.population(3, "cpu").to_vector())
    assert parts.meta["trained_by"] == ["fused"] * 3 and "trained by: fused (epochs 1-3)" in out, out


@pytest.mark.parametrize("args, message", [
    (["info", "/nonexistent/zoo"], "neither a zoo"),
    (["zoo", "--preset", "imagenet", "--out", "{tmp}/z"], "unknown zoo preset"),
    (["zoo", "--preset", "mnist", "--models", "2", "--out", "{tmp}/z", "--data-root", "{tmp}/nothing"], "mnist"),
    (["zoo", "--models", "two", "--out", "{tmp}/z"], "argument --models"),
    (["zoo", "--models", "2", "--device", "tpu", "--out", "{tmp}/z"], "unknown device"),
    (["bench", "everything"], "invalid choice"),
    (["lwln", "--zoo", "{tmp}/z", "--out", "{tmp}/l", "--behaviours", "0,lots"], "expected comma-separated numbers"),
    (["lwln", "--zoo", "/nonexistent/zoo", "--out", "{tmp}/l"], "/nonexistent/zoo"),
    (["demo", "--out", "{tmp}/d", "--gan-epochs", "0"], "expected a positive number of epochs"),   # refused before any training
])
def test_user_errors_are_one_line_with_status_2(tmp_path, args, message):
    result = run(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_corrupted_checkpoint_is_refused_and_kept(tmp_path):
    folder = tmp_path / "zoo"
    run("zoo", "--models", "4", "--epochs", "2", "--until", "1", "--quiet", "--out", str(folder))
    checkpoint = folder / "checkpoints" / "epoch_001.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[:64])
    result = run("zoo", "--models", "4", "--epochs", "2", "--quiet", "--out", str(folder), check=False)
    assert result.returncode == 2 and "epoch_001.safetensors" in result.stderr and "Traceback" not in result.stderr
    assert checkpoint.stat().st_size == 64, "a refused file is left for the user to inspect"


def test_bench_zoo_prints_json_lines():
    lines = run("bench", "zoo", "--models", "4", "--steps", "2", "--device", "cpu").stdout.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["bench"] for r in records] == ["zoo_train", "zoo_eval"]
    train, evaluation = records
    assert train["models"] == 4 and train["batch_size"] == 10 and train["device"] == "cpu"
    assert train["batched_model_steps_per_s"] > 0 and train["sequential_model_steps_per_s"] > 0 and train["ratio"] > 0
    assert train["trainer"] == "fused" and train["torch_batched_model_steps_per_s"] > 0, "on the cpu the bench times the fused kernel beside torch's step"
    assert evaluation["batched_model_images_per_s"] > 0 and evaluation["images"] == 360


BAD_SETTINGS = [  # (command line, the field named in the one-line error)
    (["zoo", "--models", "0"], "ZooConfig.models"), (["zoo", "--models", "-5"], "ZooConfig.models"),
    (["zoo", "--epochs", "-3"], "ZooConfig.epochs"), (["zoo", "--epochs", "0"], "ZooConfig.epochs"),
    (["zoo", "--lr", "nan"], "ZooConfig.lr"), (["zoo", "--lr", "0"], "ZooConfig.lr"), (["zoo", "--lr", "inf"], "ZooConfig.lr"),
    (["zoo", "--weight-decay", "-0.1"], "ZooConfig.weight_decay"), (["zoo", "--batch-size", "0"], "ZooConfig.batch_size"),
    (["zoo", "--first-seed", "-1"], "ZooConfig.first_seed"), (["zoo", "--init", "zeros"], "ZooConfig.init"),
    (["zoo", "--activation", "swish"], "ZooConfig.activation"), (["zoo", "--dataset", "two words"], "ZooConfig.dataset"),
    (["zoo", "--dataset", "imagenet"], "unknown dataset"), (["zoo", "--mlp", "784"], "--mlp"),
    (["zoo", "--ray", "local", "--shards", "0"], "shards=0"),
    (["train", "--zoo", "Z", "--epochs", "0"], "AEConfig.epochs"), (["train", "--zoo", "Z", "--batch-size", "0"], "AEConfig.batch_size"),
    (["train", "--zoo", "Z", "--lr", "nan"], "AEConfig.lr"), (["train", "--zoo", "Z", "--dropout", "1.5"], "AEConfig.dropout"),
    (["train", "--zoo", "Z", "--behaviour", "-1"], "AEConfig.behaviour"), (["train", "--zoo", "Z", "--preset", "huge"], "preset"),
    (["train", "--zoo", "Z", "--interpolation", "-0.1"], "AEConfig.interpolation"),
    (["train", "--zoo", "Z", "--latent", "cls", "--linear-path"], "AEConfig.linear_path"),
    (["demo", "--latent", "cls", "--linear-path"], "AEConfig.linear_path"), (["demo", "--d-z", "0"], "AEConfig.d_z"),
]


@pytest.mark.parametrize("args, field", BAD_SETTINGS, ids=[" ".join(a) for a, _ in BAD_SETTINGS])
def test_every_bad_setting_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, field):
    from hyperrep_nb.cli import main
    status = main([*args, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: ") and field in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_reader_that_stops_early_gets_no_traceback():
    "`hyperrep bench zoo | head -1`: when the output's reader is gone, the command ends quietly with status 1."
    process = subprocess.Popen([HYPERREP, "bench", "zoo", "--models", "4", "--steps", "1", "--device", "cpu", "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()                       # gone before the command prints its first line
    assert process.wait(timeout=300) == 1
    stderr = process.stderr.read().decode()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
