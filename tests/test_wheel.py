"""The package works from a wheel: built and installed non-editable into a temporary folder, every module imports
from there, with the repository out of reach (issue 11: `hyperrep_nb.docs` once read `tools/` of the checkout)."""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_imports_from_a_non_editable_install(tmp_path):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel, = wheels.glob("hyperrep_nb-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)], check=True)
    modules = sorted(p.stem for p in (target / "hyperrep_nb").glob("*.py") if p.stem != "__init__")
    assert {"docs", "train", "evaluate", "demo", "cli"} <= set(modules)
    script = ("import importlib, json, hyperrep_nb\n"
              f"names = {modules!r}\n"
              "for name in names: importlib.import_module('hyperrep_nb.' + name)\n"
              "print(json.dumps({'file': hyperrep_nb.__file__, 'imported': names}))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(target.resolve()), report["file"]   # not the checkout
    assert report["imported"] == modules
