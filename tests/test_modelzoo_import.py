"""`import_modelzoo` on small public-layout zoos written here from scratch (modelzoos.cc layout).

Every model directory is built by hand (`params.json`, `result.json` JSON lines, `checkpoint_NNNNNN/checkpoints`
written with `torch.save`), independently of the module under test, including broken and hostile models.
"""
import collections, json, math, os
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperrep_nb import modelzoo
from hyperrep_nb.arch import paper_cnn
from hyperrep_nb.core import HyperrepError
from hyperrep_nb.modelzoo import import_modelzoo, load_modelzoo_checkpoint, modelzoo_metrics, read_modelzoo_model
from hyperrep_nb.zoo import Zoo, model_splits

EPOCHS = 3


def state_dicts(seed, epochs=EPOCHS, prefix="module_list.", channels=1):
    "One paper CNN's state_dict per epoch 0..epochs (drifting weights), keys renamed with `prefix`."
    torch.manual_seed(seed)
    base = paper_cnn(channels).module().state_dict()
    return [collections.OrderedDict((f"{prefix}{k}", v + 0.02 * e * torch.randn_like(v)) for k, v in base.items())
            for e in range(epochs + 1)]


def write_model(root, seed, epochs=EPOCHS, params=None, results="fraction", prefix="module_list.", channels=1):
    "A model directory as the public zoos have it; returns (folder, state_dicts)."
    folder = Path(root) / f"NN_tune_trainable_{seed:05d}_seed={seed}_lr=0.0003_2021-03-01_12-00-00"
    sds = state_dicts(seed, epochs, prefix, channels)
    for epoch, sd in enumerate(sds):
        (folder / f"checkpoint_{epoch:06d}").mkdir(parents=True)
        torch.save(sd, folder / f"checkpoint_{epoch:06d}" / "checkpoints")
        torch.save({"state": {}, "param_groups": []}, folder / f"checkpoint_{epoch:06d}" / "optimizer")
    spec = {"model::type": "CNN", "model::channels_in": channels, "model::nlin": "tanh", "model::init_type": "uniform",
            "optim::optimizer": "adam", "optim::lr": 3e-4, "optim::wd": 0.0, "training::batchsize": 10, "seed": seed,
            "training::epochs_train": epochs, "dataset::dump": "/ds/MNIST/dataset.pt", "trainset::sizes": [50000, 10000]}
    spec.update(params or {})
    (folder / "params.json").write_text(json.dumps(spec))
    scale = 100 if results == "percent" else 1
    lines = [{"train_loss": 2.0 - 0.1 * e, "train_acc": (0.2 + 0.1 * e + seed / 1000) * scale, "test_loss": 2.1 - 0.1 * e,
              "test_acc": (0.15 + 0.1 * e + seed / 1000) * scale, "val_loss": 2.2 - 0.1 * e, "val_acc": (0.1 + 0.1 * e) * scale,
              "training_iteration": e, "time_this_iter_s": 1.5} for e in range(1, epochs + 1)]
    (folder / "result.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder, sds


class Sneaky(collections.OrderedDict):
    "A state_dict subclass: its class is not an allowed global for `weights_only=True`."


class Payload:
    "Unpickling this calls `os.makedirs(path)`: `weights_only=True` must refuse it before it runs."
    def __init__(self, path): self.path = str(path)
    def __reduce__(self): return (os.makedirs, (self.path,))


def assert_same_weights(zoo, sources):
    "Every stored epoch of every model equals its original state_dict, tensor by tensor (by order)."
    for epoch in zoo.epochs:
        population = zoo.population(epoch, device="cpu")
        for i, name in enumerate(population.table["source_dir"]):
            original = list(sources[name][epoch].values())
            for k, ours in enumerate(population.arch.param_shapes):
                assert torch.equal(population.params[ours][i], original[k]), (name, epoch, ours)


@pytest.fixture
def clean_zoo(tmp_path):
    "Eight complete models, accuracies as fractions."
    sources = {}
    for seed in range(1, 9):
        folder, sds = write_model(tmp_path / "public", seed)
        sources[folder.name] = sds
    return tmp_path / "public", sources


def test_import_keeps_weights_metrics_and_config(clean_zoo, tmp_path):
    source, sources = clean_zoo
    (source / "not_a_model").mkdir()            # no params.json: ignored
    zoo, report = import_modelzoo(source, tmp_path / "zoo", progress=False)
    assert report["found"] == 8 and report["imported"] == 8 and report["dropped"] == {}
    assert zoo.epochs == list(range(EPOCHS + 1)) and zoo.last_epoch == EPOCHS
    again = Zoo(tmp_path / "zoo")
    assert again.arch == paper_cnn(1, "tanh") and len(again) == 8
    assert_same_weights(again, sources)
    names = sorted(sources)
    assert list(again.table["source_dir"]) == names
    assert list(again.table["seed"]) == list(range(1, 9))
    assert list(again.table["split"]) == list(model_splits(8, 42))
    assert list(again.table["optim::lr"]) == [3e-4] * 8
    assert list(again.table["trainset::sizes"]) == ["[50000, 10000]"] * 8
    assert again.meta["dataset"] == "mnist"
    config = again.config
    assert config["preset"] == "imported" and config["source"] == str(source)
    assert (config["lr"], config["weight_decay"], config["batch_size"], config["activation"], config["init"]) == (3e-4, 0.0, 10, "tanh", "uniform")
    # metrics: line i is epoch i + 1; the initialisation has none (NaN, stored as null); val metrics are kept
    seeds = np.arange(1, 9)
    np.testing.assert_allclose(again.metrics["test_accuracy"][1:], [0.15 + 0.1 * e + seeds / 1000 for e in range(1, EPOCHS + 1)], atol=1e-6)
    np.testing.assert_allclose(again.metrics["val_loss"][2], 2.0, atol=1e-6)
    assert np.isnan(again.metrics["train_loss"][0]).all()
    text = (tmp_path / "zoo" / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))
    assert json.loads(text)["train_accuracy"][0] == [None] * 8
    population = again.population(2, "cpu")
    np.testing.assert_allclose(population.table["test_accuracy"], 0.35 + seeds / 1000, atol=1e-6)


def test_broken_and_hostile_models_are_dropped_and_counted(clean_zoo, tmp_path):
    source, sources = clean_zoo
    bad = {}

    def add(seed, reason, damage):
        folder, sds = write_model(source, seed)
        damage(folder)
        bad[folder.name] = reason

    def checkpoint(folder, epoch): return folder / f"checkpoint_{epoch:06d}" / "checkpoints"

    def resave(epoch, change):
        def damage(folder):
            sd = torch.load(checkpoint(folder, epoch), weights_only=True)
            torch.save(change(sd), checkpoint(folder, epoch))
        return damage

    marker = tmp_path / "payload_ran"

    def first_key(sd): return next(iter(sd))
    add(101, "nan", resave(2, lambda sd: {k: v.clone().fill_(math.nan) if k == first_key(sd) else v for k, v in sd.items()}))
    add(102, "nan", resave(1, lambda sd: {k: v.clone().fill_(math.inf) if k.endswith("11.bias") else v for k, v in sd.items()}))
    add(103, "above_threshold", resave(3, lambda sd: {k: v - 7.5 if k.endswith("9.weight") else v for k, v in sd.items()}))
    add(104, "missing_epochs", lambda folder: checkpoint(folder, 2).unlink())
    add(105, "unreadable", lambda folder: checkpoint(folder, 1).write_bytes(b"\x80\x02garbage" * 7))
    add(106, "unreadable", lambda folder: checkpoint(folder, 3).write_bytes(checkpoint(folder, 3).read_bytes()[:300]))
    add(107, "unreadable", resave(0, lambda sd: Sneaky(sd)))
    add(108, "unreadable", resave(2, lambda sd: {**sd, "extra": Payload(marker)}))
    add(109, "unreadable", resave(1, lambda sd: list(sd.values())))
    add(110, "unreadable", lambda folder: (folder / "params.json").write_text("{not json"))
    add(111, "unreadable", lambda folder: (folder / "result.json").open("a").write('{"train_loss": 1.0, "te'))

    zoo, report = import_modelzoo(source, tmp_path / "zoo", progress=False)
    assert not marker.exists(), "the pickled payload ran"
    counts = {k: report[k] for k in ("found", "imported", "nan", "above_threshold", "missing_epochs", "unreadable")}
    assert counts == {"found": 19, "imported": 8, "nan": 2, "above_threshold": 1, "missing_epochs": 1, "unreadable": 7}
    assert {name: d["reason"] for name, d in report["dropped"].items()} == bad
    details = {name: d["detail"] for name, d in report["dropped"].items()}
    assert "checkpoint_000000/checkpoints" in details[next(n for n in bad if "00107_" in n)]
    assert "weights_only" in details[next(n for n in bad if "00108_" in n)]
    assert "holds list" in details[next(n for n in bad if "00109_" in n)]
    assert "result.json line 4" in details[next(n for n in bad if "00111_" in n)]
    assert sorted(zoo.table["source_dir"]) == sorted(sources)
    assert_same_weights(zoo, sources)
    assert zoo.meta["import"]["imported"] == 8
    # with no threshold the large (finite) weights are kept
    _, loose = import_modelzoo(source, tmp_path / "loose", threshold=None, progress=False)
    assert loose["above_threshold"] == 0 and loose["imported"] == 9


def test_epoch_selection_and_noncontiguous_epochs(clean_zoo, tmp_path, monkeypatch):
    source, sources = clean_zoo
    short, _ = write_model(source, 200, epochs=EPOCHS - 1)        # its run stopped one epoch early
    zoo, report = import_modelzoo(source, tmp_path / "all", progress=False)
    assert zoo.epochs == list(range(EPOCHS + 1)) and report["missing_epochs"] == 1 and short.name in report["dropped"]
    monkeypatch.setattr(modelzoo, "_CACHE_BYTES", 0)             # re-read the checkpoints instead of caching them
    sparse, report = import_modelzoo(source, tmp_path / "sparse", epochs=[2, 0], progress=False)
    assert report["imported"] == 9 and sparse.epochs == [0, 2] and sparse.last_epoch == 2
    assert json.loads((tmp_path / "sparse" / "zoo.json").read_text())["epochs"] == [0, 2]
    assert sparse.metrics["test_accuracy"].shape == (2, 9)
    np.testing.assert_allclose(sparse.metrics["test_accuracy"][1], 0.35 + np.array(sorted([*range(1, 9), 200])) / 1000, atol=1e-6)
    with pytest.raises(HyperrepError, match="epoch 1 is not in zoo"): sparse.population(1)
    sources[short.name] = state_dicts(200, EPOCHS - 1)
    assert_same_weights(sparse, sources)
    last, _ = import_modelzoo(source, tmp_path / "last", epochs=EPOCHS, progress=False)
    assert last.epochs == [EPOCHS] and len(last) == 8
    assert torch.equal(last.population(EPOCHS, "cpu").to_vector(), zoo.population(EPOCHS, "cpu").to_vector())


def test_results_in_percent_and_with_an_initialisation_line(tmp_path):
    folder, _ = write_model(tmp_path / "public", 1, results="percent")
    metrics = modelzoo_metrics(read_modelzoo_model(folder))
    assert list(metrics.index) == list(range(EPOCHS + 1))
    np.testing.assert_allclose(metrics.loc[3, ["train_accuracy", "test_accuracy", "val_accuracy"]], [0.501, 0.451, 0.4], atol=1e-9)
    assert metrics.loc[0].isna().all()
    # a zoo that logged the initialisation too: one line per checkpoint, line i is epoch i
    lines = [{"test_acc": 0.1 * e, "training_iteration": e + 1} for e in range(EPOCHS + 1)]
    (folder / "result.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    metrics = modelzoo_metrics(read_modelzoo_model(folder))
    np.testing.assert_allclose(metrics["test_accuracy"], [0.0, 0.1, 0.2, 0.3], atol=1e-9)
    assert metrics["train_loss"].isna().all()


def test_other_names_channels_and_activations_map_by_order(tmp_path):
    sources = {}
    for seed in (1, 2, 3):
        folder, sds = write_model(tmp_path / "public", seed, prefix="net.features.", channels=3, params={"model::nlin": "gelu"})
        sources[folder.name] = sds
    zoo, _ = import_modelzoo(tmp_path / "public", tmp_path / "zoo", progress=False)
    assert zoo.arch == paper_cnn(3, "gelu")
    assert_same_weights(zoo, sources)
    params = load_modelzoo_checkpoint(next(iter(read_modelzoo_model(folder)["checkpoints"].values())), paper_cnn(3))
    assert list(params) == list(paper_cnn(3).param_shapes) and all(p.dtype == torch.float32 for p in params.values())


def test_errors_name_the_problem(clean_zoo, tmp_path):
    source, _ = clean_zoo
    first = sorted(source.iterdir())[0]
    with pytest.raises(HyperrepError, match=r"checkpoint_000000/checkpoints: tensor 0 'module_list.0.weight' has shape \[8, 1, 5, 5\]"):
        import_modelzoo(source, tmp_path / "a", arch=paper_cnn(3), progress=False)
    extra = first / "checkpoint_000001" / "checkpoints"
    torch.save({**torch.load(extra, weights_only=True), "module_list.12.weight": torch.zeros(3)}, extra)
    with pytest.raises(HyperrepError, match="checkpoint_000001/checkpoints holds 11 tensors"):
        import_modelzoo(source, tmp_path / "b", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(HyperrepError, match="is not empty"):
        import_modelzoo(source, tmp_path / "full", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HyperrepError, match="no model directories"):
        import_modelzoo(tmp_path / "empty", tmp_path / "c", progress=False)
    write_model(tmp_path / "mixed", 1)
    write_model(tmp_path / "mixed", 2, params={"model::nlin": "relu"})
    with pytest.raises(HyperrepError, match="disagree"):
        import_modelzoo(tmp_path / "mixed", tmp_path / "d", progress=False)
    with pytest.raises(HyperrepError, match="no model .* could be imported"):
        import_modelzoo(tmp_path / "mixed", tmp_path / "e", arch=paper_cnn(), epochs=[7], progress=False)
    assert not (tmp_path / "e").exists()


def test_import_is_deterministic(clean_zoo, tmp_path):
    source, _ = clean_zoo
    one, _ = import_modelzoo(source, tmp_path / "one", split_seed=3, progress=False)
    two, _ = import_modelzoo(source, tmp_path / "two", split_seed=3, progress=False)
    assert one.table.equals(two.table)
    assert list(one.table["split"]) == list(model_splits(8, 3))
    for epoch in one.epochs:
        assert (tmp_path / "one" / "checkpoints" / f"epoch_{epoch:03d}.safetensors").read_bytes() == \
               (tmp_path / "two" / "checkpoints" / f"epoch_{epoch:03d}.safetensors").read_bytes()
