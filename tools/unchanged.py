"""Run a command and fail if it changed any file under PATH: `python tools/unchanged.py PATH -- CMD...`."""
import hashlib, subprocess, sys
from pathlib import Path


def snapshot(root: Path) -> dict:
    "Map each file under `root` to the hash of its bytes."
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def main(argv):
    "Snapshot, run, compare; exit 1 listing the changed files."
    if "--" not in argv or argv.index("--") != 1:
        sys.exit("usage: unchanged.py PATH -- COMMAND...")
    root, command = Path(argv[0]), argv[2:]
    before = snapshot(root)
    subprocess.run(command, check=True)
    after = snapshot(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        print(f"`{' '.join(command)}` changed {len(changed)} file(s) under {root}: " + ", ".join(changed))
        print("The notebooks are the source: run it yourself, review and commit the result.")
        sys.exit(1)
    print(f"ok: `{' '.join(command)}` left {root} unchanged")


if __name__ == "__main__":
    main(sys.argv[1:])
