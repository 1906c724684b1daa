"""Parts of the demo that only `make demo` would otherwise run: the autoencoders trained side by side in worker processes."""
import json
import torch
from hyperrep_nb.zoo import zoo_config, train_zoo
from hyperrep_nb.model import ae_config
from hyperrep_nb.demo import train_autoencoders


def test_autoencoders_side_by_side_in_worker_processes(tmp_path):
    zoo = train_zoo(zoo_config("digits", models=10, epochs=3), tmp_path / "zoo", device="cpu", progress=False)
    configs = {"hyperrep": ae_config("cpu", epochs=2), "baseline": ae_config("cpu", epochs=2, lwln=False)}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)                      # the parallel path: two workers with one thread each
    try: bundles = train_autoencoders(zoo, tmp_path, configs, (2, 3), torch.device("cpu"), progress=False)
    finally: torch.set_num_threads(threads)
    assert set(bundles) == {"hyperrep", "baseline"}
    assert bundles["hyperrep"].config.lwln and not bundles["baseline"].config.lwln
    for name in configs:
        state = json.loads((tmp_path / name / "training" / "state.json").read_text())
        assert state["epoch"] == 2 and (tmp_path / name / "metrics.json").exists()
    # a rerun finds both finished and trains nothing more
    before = {name: (tmp_path / name / "autoencoder.safetensors").read_bytes() for name in configs}
    torch.set_num_threads(2)
    try: again = train_autoencoders(zoo, tmp_path, configs, (2, 3), torch.device("cpu"), progress=False)
    finally: torch.set_num_threads(threads)
    assert {name: (tmp_path / name / "autoencoder.safetensors").read_bytes() for name in configs} == before
    assert torch.equal(again["hyperrep"].embeddings, bundles["hyperrep"].embeddings)
