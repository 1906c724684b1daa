"""Memory: estimates against the kernel's measured peak, refusals before allocation, and sampling that streams."""
import json, sys

import pytest

from helpers import run, run_measured

ZOO_CHILD = """
import json, sys, tempfile
from hyperrep_nb.arch import mlp
from hyperrep_nb.core import resident_bytes
from hyperrep_nb.data import load_dataset
from hyperrep_nb.zoo import train_zoo, zoo_config, zoo_architecture, zoo_memory
width, models = int(sys.argv[1]), int(sys.argv[2])
config = zoo_config("digits", dataset="wine", arch=mlp([13, width, 3], "relu").to_dict(), models=models, epochs=1)
load_dataset("wine", device="cpu")
start = resident_bytes()
train_zoo(config, tempfile.mkdtemp(), device="cpu", progress=False)
print(json.dumps({"start": start, "estimate": zoo_memory(zoo_architecture(config), models, 64, config.batch_size)}))
"""


@pytest.mark.parametrize("models", [8, 24])
def test_zoo_memory_estimate_is_within_2x_of_the_measured_peak(models):
    stdout, peak = run_measured(sys.executable, "-c", ZOO_CHILD, "60000", str(models))
    record = json.loads(stdout)
    measured = peak - record["start"]
    assert measured / 2 <= record["estimate"] <= 2 * measured, (record, measured)


def test_a_zoo_that_cannot_fit_is_refused_in_one_line_before_anything_is_written(tmp_path):
    result = run("zoo", "--mlp", "13,100000000,3", "--dataset", "wine", "--models", "100", "--quiet", "--out", str(tmp_path / "z"), check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: training 100 models of mlp_13-100000000-3") and "of memory but" in result.stderr
    assert "lower the architecture's size" in result.stderr and not (tmp_path / "z").exists()
    result = run("zoo", "--mlp", "13,1000000,3", "--dataset", "wine", "--models", "10000", "--quiet", "--out", str(tmp_path / "z"), check=False)
    assert result.returncode == 2 and "lower --models (at most" in result.stderr and not (tmp_path / "z").exists(), result.stderr
