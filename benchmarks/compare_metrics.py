"""Compare two runs' metrics.json, ignoring timing and cache-state fields; exit 1 on a difference.

    python benchmarks/compare_metrics.py BEFORE/metrics.json AFTER/metrics.json

Used to check that a refactoring changes no result: run ``./reproduce.sh --profile smoke`` (or
quick) from both trees with fresh ``DEEPNNK_CACHE`` folders and compare each notebook's metrics.
"""

import json
import math
import sys

SKIP = ("seconds", "time", "timing", "elapsed", "duration", "cached", "from_cache")


def walk(a, b, path, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if any(s in str(k).lower() for s in SKIP):
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'after' if k not in a else 'before'}")
                continue
            walk(a[k], b[k], f"{path}/{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):  # a length change is reported above
            walk(x, y, f"{path}[{i}]", out)
    else:
        same = a == b or (
            isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        )
        if not same:
            out.append(f"{path}: {a!r} vs {b!r}")


before, after = (json.load(open(p)) for p in sys.argv[1:3])
diffs = []
walk(before, after, "", diffs)
print("\n".join(diffs[:50]) or "identical (timings ignored)")
print(f"{len(diffs)} differences")
sys.exit(1 if diffs else 0)
