"""Shrink the widget state saved in executed notebooks: plotly's FigureWidget stores its whole 5 MB
JavaScript bundle (`_esm`) once per figure; `hyperrep_nb.docs.compact_widgets` replaces every copy with a
marker that the docs build turns back into the bundle of the installed plotly. Run after executing a notebook:

    python tools/compact_widgets.py nbs/12_widgets.ipynb [...]
"""
import sys
from hyperrep_nb.docs import BUNDLE_MARKER, compact_widgets

if __name__ == "__main__":
    for name in sys.argv[1:]: print(f"{name}: {compact_widgets(name)} plotly bundles replaced by {BUNDLE_MARKER!r}")
