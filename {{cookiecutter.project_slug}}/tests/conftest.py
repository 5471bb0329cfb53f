import sys
from pathlib import Path

# Tests import main.py and scripts/ from the repo root.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
