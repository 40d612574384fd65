"""How the log depths of a cell's two profiles correlate, over the reference pairs and over the query's (issue 26).

    python benchmarks/prototypes/depth_correlation.py --out benchmarks/results/depth_correlation

``tl.match_modalities(depth="auto")`` decides on the reference pairs' correlation (``scmatch.tl._depth``); whether
the relation holds for the query's cells is what decides if it helps. The query's correlation uses the known pairing,
which a user does not have: it explains the *Depth* rows of benchmarks/README.md, it is not a method. One record per
split of the benchmark sets that have counts in both modalities (the splits of ``_data.load_split``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import _data  # noqa: E402
import run_matching  # noqa: E402

DATASETS = ("cite", "totalvi", "pbmc_protein", "multiome", "pbmc_multiome", "snare2", "snare2_rev", "simulated")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--sim-cells", type=int, default=6000)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "depth_correlation")
    args = p.parse_args(argv)
    from scmatch.tl._depth import pair_correlation

    args.out.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        split = _data.load_split(dataset, n_sim_cells=args.sim_cells)  # the query still in paired order
        record = {
            "dataset": dataset,
            "method": "counts",
            "n_train": split.n_train,
            "n_test": split.n_test,
            "reference_correlation": pair_correlation(split.D1_train, split.D2_train),
            "query_correlation": pair_correlation(split.D1_test, split.D2_test),
            **run_matching._git(),
            "command": "python benchmarks/prototypes/depth_correlation.py " + " ".join(argv),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (args.out / f"{dataset}__counts.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{dataset}: reference {record['reference_correlation']:.3f}, query {record['query_correlation']:.3f}")


if __name__ == "__main__":
    main()
