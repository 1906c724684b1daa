"""What the CLI tests share: the installed `hyperrep` command, running it, and reading a zoo folder's committed epoch."""
import json, os, subprocess, sys, tempfile
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


def run_measured(*args):
    "Run a command, returning its stdout and its peak resident memory in bytes (the kernel's count for that process alone)."
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(list(args), stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0); err.seek(0)
        if process.returncode != 0: raise AssertionError(err.read())
        return out.read(), usage.ru_maxrss * 1024
