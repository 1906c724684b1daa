"""What the CLI tests share: the installed `hyperrep` command, running it, and reading a zoo folder's committed epoch."""
import json, subprocess, sys
from pathlib import Path

HYPERREP = str(Path(sys.executable).parent / "hyperrep")


def run(*args, check=True, **kwargs):
    "Run the CLI, returning the completed process."
    result = subprocess.run([HYPERREP, *args], capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0: raise AssertionError(result.stderr)
    return result


def last_epoch(folder: Path) -> int:
    "The committed epoch of a zoo folder (-1 when none yet)."
    try: return json.loads((folder / "zoo.json").read_text())["last_epoch"]
    except (FileNotFoundError, json.JSONDecodeError): return -1
