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


def _module_level_imports(path: Path) -> set[str]:
    "Top-level names of the modules a file imports at module level (not inside functions)."
    import ast
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import): names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0: names.add(node.module.split(".")[0])
    return names


def test_the_wheel_requires_every_package_its_modules_import(tmp_path):
    "A plain `pip install hyperrep_nb` brings what importing it needs (fastcore was once only a dev requirement)."
    import importlib.metadata, re, zipfile
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel, = tmp_path.glob("hyperrep_nb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    canonical = lambda name: re.sub(r"[-_.]+", "-", name).lower()
    required = {canonical(re.match(r"[A-Za-z0-9._-]+", line.split(":", 1)[1].strip()).group())
                for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    imported = set().union(*(_module_level_imports(p) for p in (ROOT / "hyperrep_nb").glob("*.py")))
    third_party = imported - set(sys.stdlib_module_names) - {"hyperrep_nb", "__future__"}
    distributions = importlib.metadata.packages_distributions()
    missing = {name: distributions.get(name) for name in third_party
               if not {canonical(d) for d in distributions.get(name, [name])} & required}
    assert not missing, f"imported at module level but not required by the wheel: {missing}"
