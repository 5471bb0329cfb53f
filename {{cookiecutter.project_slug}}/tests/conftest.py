import sys
from pathlib import Path

# Tests import main.py from the repo root.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
