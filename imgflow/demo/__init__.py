"""Sample images, the bundled flag set and a loopback server for demos, tests and benchmarks."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
FLAGS_DIR = DEMO_DIR / "flags"
PATHS_FILE = DEMO_DIR / "paths.txt"
