"""Shrink the widget state saved in executed notebooks: plotly's FigureWidget stores its whole 5 MB
JavaScript bundle (`_esm`) once per figure; this replaces every copy with a marker that the docs build
(`hyperrep_nb.docs`) turns back into the bundle of the installed plotly. Run after executing a notebook:

    python tools/compact_widgets.py nbs/12_widgets.ipynb [...]
"""
import json, sys
from pathlib import Path

MARKER = "hyperrep_nb:plotly-widgetbundle"
STATE = "application/vnd.jupyter.widget-state+json"


def plotly_bundle() -> str:
    "The ESM bundle of the installed plotly's FigureWidget."
    import plotly
    return (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")


def compact(path: Path) -> int:
    "Replace the bundle copies in one notebook's widget state; returns how many were replaced."
    nb = json.loads(path.read_text(encoding="utf-8"))
    models = nb.get("metadata", {}).get("widgets", {}).get(STATE, {}).get("state", {})
    bundle, replaced = plotly_bundle(), 0
    for model in models.values():
        state = model.get("state", {})
        if state.get("_esm") == bundle:
            state["_esm"], replaced = MARKER, replaced + 1
    if replaced:
        tmp = path.with_suffix(".ipynb.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
    return replaced


if __name__ == "__main__":
    for name in sys.argv[1:]: print(f"{name}: {compact(Path(name))} plotly bundles replaced by {MARKER!r}")
