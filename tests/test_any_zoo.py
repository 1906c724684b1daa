"""Zoos of any architecture on any dataset through the `hyperrep` command: an MLP zoo of a bundled tabular dataset
end to end (zoo, autoencoder, samples, evaluation), and bad input refused with one line, exit 2, nothing written."""
import json

import pytest

from hyperrep_nb.arch import Architecture, Linear, Act, Flatten, mlp
from helpers import run


def test_mlp_zoo_of_a_tabular_dataset_end_to_end(tmp_path):
    zoo, bundle, population = tmp_path / "zoo", tmp_path / "hr", tmp_path / "pop"
    summary = run("zoo", "--dataset", "wine", "--mlp", "13,8,3", "--models", "20", "--epochs", "5", "--quiet", "--out", str(zoo)).stdout
    assert "mlp_13-8-3" in summary and "dataset: wine" in summary
    meta = json.loads((zoo / "zoo.json").read_text())
    assert meta["arch"] == mlp([13, 8, 3]).to_dict() and meta["config"]["arch"] == meta["arch"]
    run("train", "--zoo", str(zoo), "--epochs", "3", "--window", "3", "5", "--quiet", "--out", str(bundle))
    sampled = json.loads(run("sample", "--bundle", str(bundle), "--sampler", "S_KDE30_joint", "--n", "8", "--quiet", "--out", str(population)).stdout)
    assert sampled["dataset"] == "wine" and 0 <= sampled["test_accuracy_mean"] <= 1
    result = json.loads(run("evaluate", str(population), "--zoo", str(zoo), "--window", "3", "5", "--quiet").stdout)
    assert result["dataset"] == "wine" and result["epochs"]["0"]["n"] == 8 and "max_iou_mean" in result["novelty"]
    from hyperrep_nb.train import HyperRepresentation
    from hyperrep_nb.widgets import interpolation_widget, noise_widget, geometry_widget, sampling_widget
    hr = HyperRepresentation(bundle, "cpu")
    assert hr.dataset().name == "wine" and hr.dataset().input_shape == (13,)
    for widget in (interpolation_widget, noise_widget, geometry_widget, sampling_widget):
        assert len(widget(hr).children) > 0, widget.__name__   # the widgets draw an MLP bundle of tabular data too


def test_a_zoo_from_an_architecture_spec_file(tmp_path):
    spec = Architecture([Flatten(), Linear(784, 12), Act("relu"), Linear(12, 10)], (1, 28, 28), "flat_mlp")
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_dict()))
    run("zoo", "--arch", str(tmp_path / "spec.json"), "--models", "3", "--epochs", "1", "--quiet", "--out", str(tmp_path / "zoo"))
    assert json.loads((tmp_path / "zoo" / "zoo.json").read_text())["arch"] == spec.to_dict()


def test_an_mlp_zoo_of_images_flattens_them(tmp_path):
    "`--mlp` on an image dataset is an MLP of the flattened images (the uneven-layer zoo of the LWLN comparison)."
    summary = run("zoo", "--mlp", "784,16,10", "--activation", "tanh", "--models", "3", "--epochs", "1", "--quiet", "--out", str(tmp_path / "zoo")).stdout
    assert "mlp_784-16-10" in summary and "dataset: digits" in summary
    assert json.loads((tmp_path / "zoo" / "zoo.json").read_text())["arch"] == mlp([784, 16, 10], "tanh", (1, 28, 28)).to_dict()


BAD_SPECS = {"unknown_layer.json": {"input_shape": [13], "layers": [{"type": "dense", "in_features": 13, "out_features": 3}]},
             "no_layers.json": {"input_shape": [13], "layers": []},
             "not_a_spec.json": [1, 2, 3],
             "avgpool.json": {"input_shape": [1, 28, 28], "layers": [{"type": "conv", "in_channels": 1, "out_channels": 4, "kernel": 5},
                                                                      {"type": "avgpool", "kernel": 2}, {"type": "flatten"},
                                                                      {"type": "linear", "in_features": 576, "out_features": 10}]}}


@pytest.mark.parametrize("args, message", [
    (["--dataset", "wine", "--mlp", "4,16,3"], "has inputs of shape [13] but architecture mlp_4-16-3 takes [4]"),
    (["--dataset", "iris", "--mlp", "4,8,2"], "has 3 classes but architecture mlp_4-8-2 outputs 2 class scores"),
    (["--dataset", "wine", "--mlp", "13,x"], "expected at least two comma-separated positive layer sizes"),
    (["--dataset", "wine", "--arch", "{tmp}/unknown_layer.json"], "unknown layer type 'dense'"),
    (["--dataset", "wine", "--arch", "{tmp}/no_layers.json"], "at least one Conv or Linear layer"),
    (["--dataset", "wine", "--arch", "{tmp}/not_a_spec.json"], "ZooConfig.arch"),
    (["--dataset", "wine", "--arch", "{tmp}/missing.json"], "missing.json"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--dataset", "wine", "--mlp", "13,8,3", "--arch", "{tmp}/no_layers.json"], "not allowed with argument"),
    (["--dataset", "wine"], "takes [1, 28, 28]"),   # the paper CNN on feature vectors
    (["--dataset", "wine", "--arch", "{tmp}/deep.json"], "nested too deeply"),                 # 3,000 levels: was a RecursionError
    (["--dataset", "wine", "--arch", "{tmp}/huge.json"], "expected a JSON file of at most 1,000,000"),
    (["--arch", "{tmp}/avgpool.json", "--trainer", "fused"], "the fused step cannot train this population: AvgPool layers are not covered"),
])
def test_bad_zoo_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, message):
    for name, spec in BAD_SPECS.items(): (tmp_path / name).write_text(json.dumps(spec))
    (tmp_path / "deep.json").write_text("[" * 3000 + "]" * 3000)
    (tmp_path / "huge.json").write_text(json.dumps({"input_shape": [13], "layers": [], "padding": "x" * 2_000_000}))
    result = run("zoo", *[a.format(tmp=tmp_path) for a in args], "--out", str(tmp_path / "zoo"), check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "zoo").exists()


def test_commands_that_combine_two_things_name_both_architectures(tmp_path):
    from hyperrep_nb.zoo import Zoo
    from hyperrep_nb.experiments import save_population
    wine, iris, population = tmp_path / "wine", tmp_path / "iris", tmp_path / "pop"
    run("zoo", "--dataset", "wine", "--mlp", "13,8,3", "--models", "4", "--epochs", "1", "--quiet", "--out", str(wine))
    run("zoo", "--dataset", "iris", "--mlp", "4,8,3", "--models", "4", "--epochs", "1", "--quiet", "--out", str(iris))
    save_population(Zoo(wine).population(1, "cpu"), population)
    for args, names in ((["--zoo", str(iris)], ("mlp_13-8-3", "mlp_4-8-3")), (["--dataset", "iris"], ("iris", "mlp_13-8-3"))):
        result = run("evaluate", str(population), *args, "--quiet", check=False)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert all(name in result.stderr for name in names) and "Traceback" not in result.stderr, result.stderr


def test_stage_messages_and_quiet(tmp_path):
    loud = run("bench", "zoo", "--models", "2", "--steps", "1", "--device", "cpu")
    assert "zoo training: 2 models" in loud.stderr and " s\n" in loud.stderr
    assert [json.loads(line)["bench"] for line in loud.stdout.splitlines()] == ["zoo_train", "zoo_eval"]
    assert run("bench", "zoo", "--models", "2", "--steps", "1", "--device", "cpu", "--quiet").stderr == ""


def test_a_zoo_of_your_own_data_from_a_dataset_folder(tmp_path):
    import numpy as np, torch
    from safetensors.torch import save_file
    from hyperrep_nb.data import Dataset, save_dataset
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    save_dataset(Dataset.from_tensors("blobs", x[:90], y[:90], x[90:], y[90:], device="cpu"), tmp_path / "blobs")
    summary = run("zoo", "--dataset", str(tmp_path / "blobs"), "--mlp", "6,8,2", "--models", "4", "--epochs", "2", "--quiet", "--out", str(tmp_path / "zoo")).stdout
    assert "dataset: blobs" in summary and (tmp_path / "zoo" / "dataset" / "dataset.json").exists()
    tensors = {"x_train": torch.from_numpy(x[:90]).clone(), "y_train": torch.from_numpy(y[:90]), "x_test": torch.from_numpy(x[90:]), "y_test": torch.from_numpy(y[90:])}
    tensors["x_train"][7, 3] = float("nan")
    save_file(tensors, tmp_path / "blobs" / "tensors.safetensors")
    bad = run("zoo", "--dataset", str(tmp_path / "blobs"), "--mlp", "6,8,2", "--out", str(tmp_path / "bad"), check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: blobs train inputs hold NaN or inf values (examples [7])"), bad.stderr
    assert bad.stderr.count("\n") == 1 and not (tmp_path / "bad").exists()
