"""Plot the peers' scale rows (benchmarks/results/peers/simulated_{cells per side}__*.json) beside scmatch's.

    python benchmarks/peers/plot_scale.py      # writes benchmarks/peers_scale.png

Two panels against cells per side: wall time (fit + match) and peak resident memory. A run stopped at the time
limit is drawn as an open marker at the limit.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results" / "peers"
OUT = HERE.parent / "peers_scale.png"
LIMIT_S = 20 * 60


def main() -> None:
    rows: dict[str, list[tuple[int, float | None, float | None]]] = defaultdict(list)
    for path in sorted(RESULTS.glob("simulated_*__*__seed0.json")):
        match = re.match(r"simulated_(\d+)__(.+)__seed0", path.stem)
        if not match:
            continue
        rec = json.loads(path.read_text())
        per_side, method = int(match.group(1)), match.group(2)
        if rec.get("error"):
            rows[method].append((per_side, None, None))
        else:
            rows[method].append((per_side, rec["fit_seconds"] + rec["match_seconds"], rec["peak_rss_mb"] / 1024))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.6))
    for method, points in sorted(rows.items()):
        points.sort()
        done = [(n, t, m) for n, t, m in points if t is not None]
        stopped = [n for n, t, _ in points if t is None]
        (line,) = ax_t.plot([n for n, _, _ in done], [t for _, t, _ in done], "o-", label=method)
        ax_m.plot([n for n, _, _ in done], [m for _, _, m in done], "o-", color=line.get_color())
        if stopped:
            ax_t.plot(stopped, [LIMIT_S] * len(stopped), "o", mfc="none", color=line.get_color())
    ax_t.axhline(LIMIT_S, color="grey", lw=0.8, ls=":")
    for ax, label in ((ax_t, "fit + match, s"), (ax_m, "peak RSS, GB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks([2000, 5000, 10000, 20000], ["2k", "5k", "10k", "20k"])
        ax.minorticks_off()
        ax.set_xlabel("simulated cells per side")
        ax.set_ylabel(label)
    ax_t.set_title("time (open: stopped at 20 min)")
    ax_m.set_title("memory")
    ax_t.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
