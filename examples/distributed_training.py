"""Data-parallel training of a MatchModel with torch DistributedDataParallel (gloo on CPU, nccl on GPUs).

Run with torch's own launcher, one process per core or GPU::

    torchrun --standalone --nproc-per-node 2 examples/distributed_training.py --n-cells 4000 --output ddp_model

Every process reads the same reference; ``MatchModel.fit`` notices the initialised process group, wraps its loss in
``DistributedDataParallel`` and lets process ``r`` train on minibatches ``r, r + world, ...`` of one shared
minibatch order, so an epoch takes ``1 / world`` of the steps in each process and the averaged gradients keep the
weights identical everywhere. Validation, early stopping and calibration run identically in every process. The
first process checks that all processes hold the same weights, saves the model and scores the query.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist

import scmatch as scm


def _digest(model: scm.model.MatchModel) -> str:
    h = hashlib.sha256()
    for name, value in sorted(model.module_.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    """Fit in every process, check the weights agree, save and score in the first."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-cells", type=int, default=4000, help="simulated cells, two batches (reference, query)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--alpha", type=float, default=1.0, help="weight of the cross-attention term (0 switches it off)")
    p.add_argument("--output", default=None, help="folder to save the fitted model in (first process)")
    p.add_argument("--report", default=None, help="JSON file the first process writes its results to")
    args = p.parse_args()

    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        torch.set_num_threads(1)  # one core per process
        device = "cpu"

    # the same data in every process (a real run reads the same .h5mu in each)
    mdata = scm.datasets.simulate_multiome(args.n_cells, n_batches=2, random_state=0)
    scm.pp.recipe_rna(mdata, mod="rna")
    scm.pp.recipe_atac(mdata, mod="atac")
    batch = mdata["rna"].obs["batch"].astype(str).to_numpy()
    ref, query = batch == "batch0", batch == "batch1"
    X1, X2 = mdata["rna"].obsm["X_pca"], mdata["atac"].obsm["X_lsi"]

    model = scm.model.MatchModel(alpha=args.alpha, device=device)
    plan = scm.model.TrainingPlan(
        max_epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size, progress_bar=rank == 0
    )
    t0 = time.perf_counter()
    model.fit(X1[ref], X2[ref], plan=plan, random_state=0)
    seconds = time.perf_counter() - t0

    digests = [None] * world
    dist.all_gather_object(digests, _digest(model))
    if rank == 0:
        P = model.predict_proba(X1[query], X2[query], top_k=100)
        truth = np.arange(int(query.sum()))
        report = {
            "world_size": world,
            "backend": dist.get_backend(),
            "identical_weights": len(set(digests)) == 1,
            "fit_seconds": seconds,
            "seconds_per_epoch": float(np.mean(model.history_["seconds"])),
            "epochs_run": len(model.history_["epoch"]),
            "match_score": scm.metrics.match_score(P, truth),
            "top10": scm.metrics.top_k_accuracy(P, truth, k=10),
            "n_query": int(query.sum()),
        }
        print(json.dumps(report, indent=1))
        if args.output:
            model.save(args.output, overwrite=True)
        if args.report:
            with open(args.report, "w") as fh:
                json.dump(report, fh)
    # tear the group down together: a gloo process leaving while another still works can abort at exit
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
