"""Print one of the README's two quick-start commands (the fenced bash blocks under "On a fresh machine").

CI runs them exactly as written, so what CI checks is what a new user types:
``python ci/readme_commands.py 1`` prints the install-and-demo command, ``... 2`` the test command.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart(text: str) -> list[str]:
    """The bash blocks after the line that starts "On a fresh machine", up to the next heading."""
    start = text.find("On a fresh machine")
    if start < 0:
        raise SystemExit("README.md: no 'On a fresh machine' paragraph")
    end = text.find("\n#", start)
    section = text[start:end if end > 0 else None]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]


def main(argv: list[str]) -> int:
    blocks = quickstart(README.read_text(encoding="utf-8"))
    if len(argv) != 2 or argv[1] not in {"1", "2"} or len(blocks) < 2:
        print(f"usage: readme_commands.py 1|2 (README quick start has {len(blocks)} bash blocks)", file=sys.stderr)
        return 2
    print(blocks[int(argv[1]) - 1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
