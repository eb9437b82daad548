"""Time training of the paper's three models on this CPU, several settings side by side.

    .venv/bin/python benchmarks/bench_train.py            # 100 of the 1000 steps of an epoch
    .venv/bin/python benchmarks/bench_train.py --quick    # 20 steps, fewer settings, no pairs

For every model and setting it times ``--steps`` Adam steps of ``deepnnk.nets.train.run_epoch`` (the
loop ``train()`` runs, batch 50, flips for regularised models) after a warm-up, and
extrapolates to seconds per epoch (1,000 steps). The settings of one process run in rounds,
interleaved, so that a neighbour's burst of load on this shared machine hits them all alike.

Settings that need a fresh process run in a child each:

* ``stock``: PyTorch as it comes: glibc's allocator defaults, libgomp's busy-waiting threads.
* ``tuned``: what the CLI uses: ``deepnnk.nets.train.tune_allocator()`` and
  ``OMP_WAIT_POLICY=PASSIVE``.

The baseline (ratio 1.00) is ``stock, 2 threads, NCHW``, i.e. PyTorch's defaults here. The
projection for 3 models x 20 epochs uses the chosen setting (tuned, 1 thread, channels-last)
plus the per-epoch test-accuracy pass, and, unless ``--quick``, also the measured slowdown when
two trainings run at once (one per core).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

BUDGET_MIN = 60.0
EPOCHS = 20
STEPS_PER_EPOCH = 1000
N_IMAGES = 10_000  # a pool to index into; speed does not depend on pixel values
CHOSEN = ("tuned", 1, True)
BASELINE = ("stock", 2, False)


def label(env: str, threads: int, channels_last: bool) -> str:
    layout = "channels_last" if channels_last else "NCHW"
    return f"{env}: {threads} thread{'s' if threads > 1 else ''}, {layout}"


# --------------------------------------------------------------------------- child process


def timed_steps(run: dict, n_steps: int, start: int, batch: int, record: bool) -> None:
    """``n_steps`` training steps from batch ``start`` of ``run``'s epoch plan, timed."""
    import torch

    from deepnnk.nets import train as tr

    torch.set_num_threads(run["key"][0])
    lo, hi = start * batch, (start + n_steps) * batch
    flips = None if run["flips"] is None else run["flips"][lo:hi]
    wall, cpu = time.perf_counter(), time.process_time()
    tr.run_epoch(run["model"], run["opt"], run["x"], run["y"], run["order"][lo:hi], flips, batch)
    if record:
        run["wall"] += time.perf_counter() - wall
        run["cpu"] += time.process_time() - cpu
        run["steps"] += n_steps


def child(spec: dict) -> dict:
    """Time the settings in ``spec`` in this process; returns {model: {label: seconds/step}}."""
    import numpy as np
    import torch

    from deepnnk.nets import train as tr
    from deepnnk.nets.features import images_to_float

    if spec["env"] == "tuned":
        tr.tune_allocator()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_IMAGES, 32, 32, 3), dtype=np.uint8)
    labels = torch.from_numpy(rng.integers(0, 10, N_IMAGES))
    x_by_layout = {
        True: images_to_float(images).contiguous(memory_format=torch.channels_last),
        False: images_to_float(images).contiguous(),
    }
    steps, rounds, batch = spec["steps"], spec["rounds"], tr.BATCH_SIZE
    per_round = max(1, steps // rounds)
    results: dict = {}
    for name in spec["models"]:
        runs = []
        for threads, channels_last in spec["settings"]:
            model = tr.build_model(name)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(model.parameters(), lr=tr.LR)
            order, flips = tr.epoch_plan(tr.SEED, 1, N_IMAGES, flip=model.regularized)
            runs.append(
                {
                    "key": (threads, channels_last),
                    "model": model,
                    "opt": opt,
                    "x": x_by_layout[channels_last],
                    "y": labels,
                    "order": order,
                    "flips": flips,
                    "wall": 0.0,
                    "cpu": 0.0,
                    "steps": 0,
                }
            )
        position = 0
        for run in runs:  # warm-up: first-call allocations, oneDNN kernel selection
            timed_steps(run, 5, 0, batch, record=False)
        for _ in range(rounds):
            position = (position + per_round) % (N_IMAGES // batch - per_round)
            for run in runs:
                timed_steps(run, per_round, position, batch, record=True)
        results[name] = {
            label(spec["env"], *run["key"]): {
                "wall": run["wall"] / run["steps"],
                "cpu": run["cpu"] / run["steps"],
            }
            for run in runs
        }
        if spec.get("eval"):
            # The per-epoch test-accuracy pass of train(): 10k images, timed on 2k.
            model = runs[0]["model"]
            torch.set_num_threads(runs[0]["key"][0])
            tr.accuracy(model, images[:200], labels[:200].numpy())
            wall = time.perf_counter()
            tr.accuracy(model, images[:2000], labels[:2000].numpy())
            results[name]["test_eval_s"] = (time.perf_counter() - wall) * 5
    return results


def run_child(spec: dict, concurrent: int = 1) -> list[dict]:
    env = dict(os.environ)
    if spec["env"] == "tuned":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(concurrent)
    ]
    outputs = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"benchmark child failed ({proc.returncode}): {' '.join(cmd)}")
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


# --------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 steps, 3 settings, no pairs")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per setting")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from deepnnk.nets.train import RECIPES

    steps = args.steps or (20 if args.quick else 100)
    rounds = 2 if args.quick else 4
    models = list(RECIPES)
    if args.quick:
        tuned = [(1, True)]
        stock = [(2, False), (1, True)]
    else:
        tuned = [(1, True), (2, True), (1, False), (2, False)]
        stock = [(2, False), (1, True)]
    common = {"steps": steps, "rounds": rounds, "models": models}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    print(
        f"{steps} timed steps per setting (after 5 warm-up), {rounds} interleaved rounds; "
        f"{os.cpu_count()} CPUs, load average {load_before:.2f}",
        flush=True,
    )
    results = {m: {} for m in models}
    for env, settings in (("stock", stock), ("tuned", tuned)):
        spec = dict(common, env=env, settings=settings, eval=env == "tuned")
        (out,) = run_child(spec)
        for m in models:
            results[m].update(out[m])

    base_label, chosen_label = label(*BASELINE), label(*CHOSEN)
    print(f"\n{'model':<32}{'setting':<34}{'s/epoch':>9}{'CPU s/ep':>10}{'vs baseline':>13}")
    for m in models:
        r = RECIPES[m]
        name = f"{m} (C={r.width}{', reg' if r.regularized else ''})"
        base = results[m][base_label]["wall"]
        rows = sorted((k, v) for k, v in results[m].items() if k != "test_eval_s")
        for k, v in sorted(rows, key=lambda kv: -kv[1]["wall"]):
            mark = (
                "  <- chosen" if k == chosen_label else ("  (baseline)" if k == base_label else "")
            )
            print(
                f"{name:<32}{k:<34}{v['wall'] * STEPS_PER_EPOCH:>9.1f}"
                f"{v['cpu'] * STEPS_PER_EPOCH:>10.1f}{base / v['wall']:>12.2f}x{mark}"
            )
            name = ""
        print(f"{'':<32}{'test-accuracy pass (10k images)':<34}{results[m]['test_eval_s']:>9.1f}")

    per_epoch = {
        m: results[m][chosen_label]["wall"] * STEPS_PER_EPOCH + results[m]["test_eval_s"]
        for m in models
    }
    serial_min = EPOCHS * sum(per_epoch.values()) / 60
    base_min = EPOCHS * sum(results[m][base_label]["wall"] for m in models) * STEPS_PER_EPOCH / 60
    print(
        f"\nprojected 3 models x {EPOCHS} epochs, one after another, chosen setting incl. test "
        f"accuracy: {serial_min:.1f} min ({'within' if serial_min <= BUDGET_MIN else 'OVER'} "
        f"the {BUDGET_MIN:.0f}-min budget); PyTorch defaults (training only): {base_min:.1f} min"
    )
    if not args.quick:
        probe = "regularised"
        spec = dict(common, env="tuned", settings=[CHOSEN[1:]], models=[probe], eval=False)
        pair = run_child(spec, concurrent=2)
        together = sum(p[probe][chosen_label]["wall"] for p in pair) / 2
        slowdown = together / results[probe][chosen_label]["wall"]
        # Two lanes: the C=32 regularised model in one, the other two in the other.
        lanes = [per_epoch["regularised"], per_epoch["overfit"] + per_epoch["underparameterised"]]
        pair_min = EPOCHS * max(lanes) * slowdown / 60
        print(
            f"two trainings at once (1 thread each) run {slowdown:.2f}x slower per step than "
            f"alone; lanes [regularised] + [overfit, underparameterised] finish in about "
            f"{pair_min:.1f} min ({'within' if pair_min <= BUDGET_MIN else 'OVER'} budget)"
        )
    print(
        f"benchmark took {time.perf_counter() - started:.0f} s; load average "
        f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
