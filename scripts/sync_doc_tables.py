"""Re-render the rollout.toml tables inside the operations docs (or --check that they match).

python scripts/sync_doc_tables.py            # rewrite docs/operations/*.md tables
python scripts/sync_doc_tables.py --check    # exit 1 if any doc drifted from gates/rollout.toml
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_rollout.config import load_config
from pytest_rollout.doc_tables import sync

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gates" / "rollout.toml"
DOCS = sorted((ROOT / "docs" / "operations").glob("*.md"))


def main(argv: list[str]) -> int:
    check = "--check" in argv
    config = load_config(CONFIG)
    drifted = []
    for doc in DOCS:
        text = doc.read_text()
        fresh = sync(text, config)
        if fresh != text:
            drifted.append(doc)
            if not check:
                doc.write_text(fresh)
    for doc in drifted:
        verb = "drifted from" if check else "re-rendered from"
        print(f"{doc.relative_to(ROOT)} {verb} {CONFIG.relative_to(ROOT)}")
    return 1 if check and drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
