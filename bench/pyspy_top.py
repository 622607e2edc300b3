"""Where a py-spy ``--format raw`` profile spends its samples, as a short table.

    .venv/bin/python bench/pyspy_top.py profile.txt [--top 25] [--match ocpp_gateway,pipeline]

A raw profile is one collapsed stack a line (``frame;frame;... count``, root first,
``--subprocesses`` adding ``process NNN:"cmdline"`` at the root). Printed per process:
its share of all samples, then the functions with the highest *inclusive* share (a
function counted once per sample it is anywhere on the stack), so "what dominates"
reads off the top rows; ``--match`` keeps only frames whose file path contains one of
the given words (the project's own modules, say), which hides the asyncio plumbing.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def parse(path: Path) -> dict[str, Counter[str]]:
    """process -> Counter(frame name -> samples it appears in); key "" holds totals."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        process = frames[0] if frames[0].startswith("process ") else "(one process)"
        per[process][""] += n
        seen = set()
        for fr in frames:
            m = _FRAME.match(fr)
            name = f"{m['func']} ({Path(m['file']).name})" if m else fr
            key = f"{name}\t{m['file'] if m else ''}"
            if key not in seen:
                seen.add(key)
                per[process][key] += n
    return per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="", help="comma-separated path words to keep")
    args = ap.parse_args()
    words = [w for w in args.match.split(",") if w]
    per = parse(args.profile)
    total = sum(c[""] for c in per.values())
    for process, counts in sorted(per.items(), key=lambda kv: -kv[1][""]):
        n = counts[""]
        print(f"{n / total:6.1%} of samples  {process[:140]}")
        rows = [
            (k, v)
            for k, v in counts.items()
            if k and not k.startswith("process ") and (not words or any(w in k for w in words))
        ]
        for key, v in sorted(rows, key=lambda kv: -kv[1])[: args.top]:
            print(f"    {v / n:6.1%}  {key.split(chr(9))[0]}")


if __name__ == "__main__":
    main()
