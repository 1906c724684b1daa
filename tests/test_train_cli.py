"""`hyperrep train` / `info` / `bench ae` end to end on a tiny zoo."""
import json, shutil, subprocess, sys

import torch
from safetensors.torch import load_file, save_file

import pytest

from helpers import HYPERREP, run, run_measured


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo") / "zoo"
    run("zoo", "--models", "12", "--epochs", "3", "--quiet", "--out", str(folder))
    return folder


def test_train_stops_resumes_and_writes_a_bundle(zoo, tmp_path):
    args = ["train", "--zoo", str(zoo), "--epochs", "3", "--window", "2", "3", "--quiet", "--out", str(tmp_path / "hr")]
    assert "stopped after epoch 1" in run(*args, "--until", "1").stdout
    state = json.loads((tmp_path / "hr" / "training" / "state.json").read_text())
    assert state["epoch"] == 1 and not (tmp_path / "hr" / "metrics.json").exists()
    out = run(*args).stdout
    assert "R2" in out and "reconstructed" in out
    metrics = json.loads((tmp_path / "hr" / "metrics.json").read_text())
    for key in ("r2", "r2_per_layer", "reconstructed_accuracy_mean", "original_accuracy_mean"):
        assert key in metrics
    assert metrics["lwln"] is True and len(metrics["r2_per_layer"]) == 5
    info = run("info", str(tmp_path / "hr")).stdout
    assert "LWLN" in info and "layer weight std" in info


def test_plain_mse_baseline_uses_the_same_code(zoo, tmp_path):
    run("train", "--zoo", str(zoo), "--epochs", "2", "--window", "2", "3", "--no-lwln", "--quiet", "--out", str(tmp_path / "base"))
    assert json.loads((tmp_path / "base" / "metrics.json").read_text())["lwln"] is False
    assert "plain MSE" in run("info", str(tmp_path / "base")).stdout


def test_training_refuses_another_run_in_the_same_folder(zoo, tmp_path):
    run("train", "--zoo", str(zoo), "--epochs", "2", "--window", "2", "3", "--quiet", "--out", str(tmp_path / "hr"))
    other = tmp_path / "other_zoo"
    run("zoo", "--models", "12", "--epochs", "3", "--activation", "gelu", "--quiet", "--out", str(other))
    result = run("train", "--zoo", str(other), "--epochs", "2", "--window", "2", "3", "--quiet", "--out", str(tmp_path / "hr"), check=False)
    assert result.returncode == 2 and "different run" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--zoo", "/nonexistent", "--out", "{tmp}/hr"], "missing file"),
    (["train", "--zoo", "{zoo}", "--preset", "huge", "--out", "{tmp}/hr"], "unknown autoencoder preset"),
    (["train", "--zoo", "{zoo}", "--window", "21", "25", "--out", "{tmp}/hr"], "the window needs"),
    (["train", "--zoo", "{zoo}", "--interpolation-anchor", "1", "--out", "{tmp}/hr"], "it needs interpolation > 0"),
    (["study", "--zoo", "{zoo}", "--preset", "huge", "--codes", "tokens 16", "--out", "{tmp}/study"], "unknown autoencoder preset"),
])
def test_train_errors(zoo, tmp_path, args, message):
    result = run(*[a.format(tmp=tmp_path, zoo=zoo) for a in args], check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and message in result.stderr, result.stderr


def test_bench_ae_prints_json():
    record = json.loads(run("bench", "ae", "--models", "20", "--steps", "1", "--device", "cpu").stdout)
    assert record["bench"] == "ae" and record["preset"] == "cpu"
    assert record["train_samples_per_s"] > 0 and record["encode_decode_models_per_s"] > 0


@pytest.fixture(scope="module")
def bundle(zoo, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "hr"
    run("train", "--zoo", str(zoo), "--epochs", "2", "--window", "2", "3", "--quiet", "--out", str(out))
    return out


def test_sample_then_evaluate(zoo, bundle, tmp_path):
    record = json.loads(run("sample", "--bundle", str(bundle), "--n", "6", "--out", str(tmp_path / "pop")).stdout)
    assert record["n"] == 6 and record["sampler"] == "S_KDE30_joint" and 0 <= record["test_accuracy_mean"] <= 1
    assert (tmp_path / "pop" / "part-00000.safetensors").is_file() and (tmp_path / "pop" / "population.json").is_file()
    result = json.loads(run("evaluate", str(tmp_path / "pop"), "--zoo", str(zoo), "--window", "2", "3",
                            "--finetune-epochs", "1", "--out", str(tmp_path / "eval.json")).stdout)
    assert set(result["epochs"]) == {"0", "1"} and result["epochs"]["0"]["n"] == 6
    assert {"mean", "std", "median", "ci95"} <= set(result["epochs"]["1"])
    assert result["novelty"]["distance_raw_mean"] > 0 and 0 <= result["novelty"]["max_iou_mean"] <= 1
    assert json.loads((tmp_path / "eval.json").read_text()) == result
    run("sample", "--bundle", str(bundle), "--n", "6", "--out", str(tmp_path / "again"))   # same seed, same models
    assert (tmp_path / "pop" / "part-00000.safetensors").read_bytes() == (tmp_path / "again" / "part-00000.safetensors").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["sample", "--bundle", "{tmp}/none", "--out", "{tmp}/p"], "missing file"),
    (["sample", "--bundle", "{bundle}", "--sampler", "S_X", "--out", "{tmp}/p"], "unknown sampler"),
    (["sample", "--bundle", "{bundle}", "--sampler", "S_GAN", "--bandwidth", "0.1", "--out", "{tmp}/p"], "bad option for S_GAN"),
    (["evaluate", "{tmp}"], "not a population folder"),
    (["sample", "--bundle", "{bundle}", "--n", "0", "--out", "{tmp}/p"], "n=0: expected a positive number"),
    (["sample", "--bundle", "{bundle}", "--n", "-5", "--out", "{tmp}/p"], "n=-5: expected a positive number"),
    (["evaluate", "{tmp}/p", "--zoo", "{tmp}/no_zoo"], "not a population folder"),
])
def test_sample_and_evaluate_errors(bundle, tmp_path, args, message):
    result = run(*[a.format(tmp=tmp_path, bundle=bundle) for a in args], check=False)
    *stages, error = result.stderr.splitlines()   # `sample` announces its stages; the one that fails ends with "failed"
    assert result.returncode == 2 and error.startswith("error: ") and message in error and "Traceback" not in result.stderr, result.stderr
    assert all(line.endswith((" s", " failed")) for line in stages), stages
    assert not (tmp_path / "p").exists()


SAMPLE_CHILD = """
import json, sys, tempfile, torch
from hyperrep_nb.core import resident_bytes
from hyperrep_nb.train import HyperRepresentation
from hyperrep_nb.sampling import fit_sampler, sample_population, sample_memory
from hyperrep_nb.experiments import save_population
bundle, n = HyperRepresentation(sys.argv[1], "cpu"), int(sys.argv[2])
sampler = fit_sampler("S_KDE30", bundle)
start = resident_bytes()
save_population(sample_population(bundle, sampler, n, torch.Generator().manual_seed(0)), tempfile.mkdtemp())
print(json.dumps({"start": start, "estimate": sample_memory(bundle, n)}))
"""


@pytest.mark.parametrize("n", [2000, 6000])
def test_sample_memory_estimate_is_within_2x_of_the_measured_peak(bundle, n):
    stdout, peak = run_measured(sys.executable, "-c", SAMPLE_CHILD, str(bundle), str(n))
    record = json.loads(stdout)
    measured = peak - record["start"]
    assert measured / 2 <= record["estimate"] <= 2 * measured, (record, measured)


def test_sample_streams_in_parts_with_flat_memory(bundle, tmp_path):
    peaks = {}
    for n in (1000, 5000):
        stdout, peaks[n] = run_measured(HYPERREP, "sample", "--bundle", str(bundle), "--n", str(n), "--part-size", "1000",
                                        "--scored", "100", "--quiet", "--out", str(tmp_path / str(n)))
        record = json.loads(stdout)
        assert record["n"] == n and record["parts"] == n // 1000 and record["scored"] == 100
    # five parts cost what one does: holding them all would add about 4 x 110 MB; two identical runs' peaks differ by up to about 50 MB
    assert peaks[5000] < peaks[1000] + 100e6, peaks
    with_parts = json.loads((tmp_path / "5000" / "population.json").read_text())
    assert with_parts["models"] == 5000 and len(with_parts["parts"]) == 5
    result = json.loads(run("evaluate", str(tmp_path / "5000"), "--part", "4", "--quiet").stdout)
    assert result["n"] == 1000


def test_sampling_more_models_than_the_disk_holds_is_refused_in_one_line(bundle, tmp_path):
    result = run("sample", "--bundle", str(bundle), "--n", str(10**13), "--quiet", "--out", str(tmp_path / "p"), check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "of disk but" in result.stderr and "lower --n" in result.stderr, result.stderr
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / "autoencoder.safetensors").write_bytes((b / "autoencoder.safetensors").read_bytes()[:1000]), "not a readable safetensors file"),
    (lambda b: (b / "config.json").write_text("{"), "not valid JSON"),
    (lambda b: save_file({"z": torch.full_like(load_file(b / "embeddings.safetensors")["z"], float("nan"))}, b / "embeddings.safetensors"),
     "anchors contain NaN or infinite values"),
])
def test_a_damaged_bundle_is_one_error_line(bundle, tmp_path, damage, message):
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    damage(damaged)
    result = run("sample", "--bundle", str(damaged), "--n", "4", "--quiet", "--out", str(tmp_path / "p"), check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "p").exists()


def test_two_zoo_commands_on_one_folder_end_with_a_clean_zoo(tmp_path):
    args = ["zoo", "--models", "8", "--epochs", "3", "--quiet"]
    run(*args, "--out", str(tmp_path / "clean"))
    both = [subprocess.Popen([HYPERREP, *args, "--out", str(tmp_path / "shared")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    assert [p.wait(timeout=300) for p in both] == [0, 0], [p.stderr.read() for p in both]
    for epoch in range(4):
        name = f"checkpoints/epoch_{epoch:03d}.safetensors"
        assert (tmp_path / "shared" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), epoch
    for name in ("zoo.json", "metrics.json"):
        assert json.loads((tmp_path / "shared" / name).read_text()) == json.loads((tmp_path / "clean" / name).read_text()), name


def test_bench_sample_prints_json(bundle):
    for extra in ([], ["--bundle", str(bundle)]):
        record = json.loads(run("bench", "sample", "--models", "20", "--sequential-models", "4", "--device", "cpu", *extra).stdout)
        assert record["bench"] == "sample" and record["models"] == 20 and record["sequential_models"] == 4
        assert record["batched_models_per_s"] > 0 and record["sequential_models_per_s"] > 0


def test_training_settings_from_the_command_line(zoo, tmp_path):
    "The landed paper recipe and the measured default are both reachable; the bundle records the setting."
    run("train", "--zoo", str(zoo), "--epochs", "2", "--window", "2", "3", "--quiet", "--out", str(tmp_path / "paper"),
        "--permutation", "random", "--target", "view", "--frame", "stored", "--behaviour", "0", "--checkpoint", "val")
    paper = json.loads((tmp_path / "paper" / "config.json").read_text())["ae"]
    assert (paper["permutation"], paper["target"], paper["canonical"], paper["behaviour"]) == ("random", "view", False, 0.0)
    assert not (tmp_path / "paper" / "reference.safetensors").exists()
    run("train", "--zoo", str(zoo), "--epochs", "2", "--window", "2", "3", "--quiet", "--out", str(tmp_path / "canonical"),
        "--permutation", "bank", "--frame", "canonical", "--behaviour", "0.05", "--behaviour-inputs", "random")
    canonical = json.loads((tmp_path / "canonical" / "config.json").read_text())["ae"]
    assert (canonical["permutation"], canonical["canonical"], canonical["behaviour"], canonical["behaviour_inputs"]) == ("bank", True, 0.05, "random")
    assert (tmp_path / "canonical" / "reference.safetensors").exists()
    info = run("info", str(tmp_path / "canonical")).stdout
    assert "frame canonical" in info and "behavioural loss kl x 0.05" in info and "fidelity" in info
    bad = run("train", "--zoo", str(zoo), "--behaviour", "-1", "--quiet", "--out", str(tmp_path / "bad"), check=False)
    assert bad.returncode == 2 and "AEConfig.behaviour must be >= 0" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_bench_ae_with_and_without_the_behavioural_loss():
    records = [json.loads(run("bench", "ae", "--models", "20", "--steps", "1", "--device", "cpu", "--behaviour", w).stdout) for w in ("0", "0.1")]
    assert [r["behaviour"] for r in records] == [0.0, 0.1] and all(r["train_samples_per_s"] > 0 for r in records)


def test_bench_ae_times_the_interpolation_term_when_asked():
    records = [json.loads(run("bench", "ae", "--models", "20", "--steps", "1", "--device", "cpu", "--interpolation", w).stdout) for w in ("0", "0.1")]
    assert [r["interpolation"] for r in records] == [0.0, 0.1]
    assert records[1]["flops_per_step"] > records[0]["flops_per_step"]      # the decoded midpoints' forward passes are in the step


def test_ablate_writes_a_resumable_table(zoo, tmp_path):
    args = ["ablate", "--zoo", str(zoo), "--out", str(tmp_path / "ablation"), "--epochs", "2", "--n", "6", "--quiet",
            "--variants", "paper: random permutations, reconstruct views;canonical, reconstruct the model"]
    out = run(*args).stdout
    assert "S_KDE30_joint" in out and "canonical, reconstruct the model" in out
    saved = json.loads((tmp_path / "ablation" / "ablation.json").read_text())
    assert set(saved) == {"paper: random permutations, reconstruct views", "canonical, reconstruct the model"}
    assert saved["canonical, reconstruct the model"]["config"]["canonical"] is True
    bad = run("ablate", "--zoo", str(zoo), "--out", str(tmp_path / "other"), "--variants", "mystery", check=False)
    assert bad.returncode == 2 and "unknown ablation variants" in bad.stderr


def test_study_starts_every_run_from_a_preset(zoo, tmp_path):
    "`hyperrep study --preset mnist --codes preset`: the paper's autoencoder with its own 700-number code, judged like any row."
    out = run("study", "--zoo", str(zoo), "--out", str(tmp_path / "study"), "--preset", "mnist", "--codes", "preset",
              "--epochs", "1", "--n", "6", "--quiet").stdout
    assert "12 models | mnist preset, preset | cpu | 1 epochs" in out and "S_KDE30_joint" in out
    row, = json.loads((tmp_path / "study" / "scaling.json").read_text()).values()
    assert row["config"]["d_z"] == 700 and row["config"]["permutation"] == "random" and row["code_size"] == 700
    assert [p.name for p in (tmp_path / "study").iterdir() if p.is_dir()] == ["mnist_12_preset_0_1"]   # named by the preset, not by a place among the codes
    bad = run("study", "--zoo", str(zoo), "--out", str(tmp_path / "other"), "--codes", "mystery", check=False)
    assert bad.returncode == 2 and "unknown codes or recipes ['mystery']" in bad.stderr and "'preset'" in bad.stderr
