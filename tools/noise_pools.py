"""Beats-noise share against noise pools of growing size, for a zoo's own unseen models and for bundles' joint-KDE
samples (50 each), one entry per population, resumed when rerun: `python tools/noise_pools.py OUT.json ZOO [BUNDLE=LABEL ...]`."""
import sys
from pathlib import Path
from hyperrep_nb.core import read_json, write_json
from hyperrep_nb.zoo import Zoo
from hyperrep_nb.train import HyperRepresentation
from hyperrep_nb.experiments import novelty_by_pool, unseen_models, sampled_populations

SIZES = (10, 24, 50, 100)   # noise models per scale; the whole pool is added by `novelty_by_pool`


def main(argv):
    "Add the zoo's unseen models and each bundle's samples to OUT (entries already there are kept)."
    if len(argv) < 2 or any("=" not in b for b in argv[2:]): sys.exit(__doc__)
    out, zoo = Path(argv[0]), Zoo(argv[1])
    rows = read_json(out) if out.exists() else {}
    epoch = zoo.last_epoch
    jobs = {f"{len(zoo)} models | unseen models (test split)": lambda: unseen_models(zoo, epoch, "cpu")}
    for spec in argv[2:]:
        folder, label = spec.split("=", 1)
        jobs[f"{len(zoo)} models | S_KDE30_joint, {label}"] = lambda folder=folder: sampled_populations(
            HyperRepresentation(folder, "cpu"), ("S_KDE30_joint",), 50)["S_KDE30_joint"]
    for key, population in jobs.items():
        if key in rows: continue
        rows[key] = novelty_by_pool(population(), zoo, epoch, SIZES).to_dict("list")
        write_json(out, rows)
        print(key, [round(s, 3) for s in rows[key]["mean"]], flush=True)


if __name__ == "__main__": main(sys.argv[1:])
