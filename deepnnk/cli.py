"""Command line: ``python -m deepnnk {train,features,evaluate} ...`` (or the ``deepnnk`` script).

    python -m deepnnk train --model regularised --epochs 20 --out runs/regularised
    python -m deepnnk evaluate --checkpoint runs/regularised/epoch_20.pt
    python -m deepnnk features --checkpoint runs/regularised --epoch 20 --out feats.npz
    python -m deepnnk evaluate --paper-model regularised --epoch 20   # the authors' weights

``--data`` defaults to ``$DEEPNNK_DATA`` (else ``./data``). Run ``train`` again with the same
``--out`` to resume an interrupted run.
"""

from __future__ import annotations

import argparse
import os
import sys

# libgomp threads that busy-wait are 3-5x slower on a shared 2-core machine whenever another
# process holds a core; passive waiting costs nothing measurable. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_THREADS = 1


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=None,
        metavar="ROOT",
        help="CIFAR-10 root holding cifar-10-batches-bin/ or -py/ (default: $DEEPNNK_DATA, "
        "else ./data)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip the md5 check of the data files"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N training and N test images (quick smoke runs)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"torch CPU threads (default {DEFAULT_THREADS}: fastest on a shared 2-core machine)",
    )


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="an epoch_XX.pt written by `train`, or its directory (then --epoch, default latest)",
    )
    # Hook for the authors' TensorFlow checkpoints (deepnnk.nets.paper); read from the data root.
    source.add_argument(
        "--paper-model",
        metavar="NAME",
        help="the authors' trained model: underparameterised, regularised or overfit "
        "(needs <data root>/deepnnk-paper-checkpoints; pick the epoch with --epoch)",
    )
    parser.add_argument(
        "--epoch", type=int, default=None, help="epoch 1..20 (default: latest / 20)"
    )


def build_parser() -> argparse.ArgumentParser:
    from deepnnk.nets.train import BATCH_SIZE, EPOCHS, LR, RECIPES, SEED

    parser = argparse.ArgumentParser(
        prog="deepnnk", description="Train, evaluate and featurise the DeepNNK paper's CNNs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train one of the paper's models, with a checkpoint per epoch (resumable)",
        description="Train with the paper's recipe (Adam 1e-3, batch 50, seed 4629). Running "
        "it again with the same --out resumes after the last complete epoch.",
    )
    presets = ", ".join(
        f"{r.name} (C={r.width}, regularised={r.regularized})" for r in RECIPES.values()
    )
    p.add_argument(
        "--model",
        required=True,
        choices=[*RECIPES, "all"],
        help=f"{presets}; 'all' trains the three, --jobs at a time, into OUT/MODEL",
    )
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"default {EPOCHS}")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="checkpoint dir (default runs/MODEL; with --model all, the parent, default runs)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="with --model all: models trained side by side, one process and --threads "
        "threads each, the longest first (default 2: one per core here)",
    )
    p.add_argument("--seed", type=int, default=SEED, help=f"default {SEED}")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"default {BATCH_SIZE}")
    p.add_argument("--lr", type=float, default=LR, help=f"default {LR}")
    p.add_argument(
        "--bias-init",
        choices=["pytorch", "tensorflow"],
        default="tensorflow",
        help="tensorflow (default): the authors' Glorot-uniform biases, U(±sqrt(3/n)), which "
        "reproduces their accuracies; pytorch: PyTorch's smaller biases (networks ~2 points "
        "more accurate)",
    )
    p.add_argument(
        "--eval-train",
        action="store_true",
        help="also measure train accuracy after each epoch (about +1/3 epoch of time)",
    )
    p.add_argument(
        "--no-eval-test", action="store_true", help="skip the test accuracy after each epoch"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    _add_data_args(p)

    p = sub.add_parser(
        "features",
        help="write a model's features (or logits) for train and test to an .npz",
        description="Writes train_features, train_labels, test_features, test_labels.",
    )
    _add_model_args(p)
    p.add_argument("--out", required=True, metavar="FILE.npz")
    p.add_argument("--layer", choices=["features", "logits"], default="features")
    p.add_argument("--batch-size", type=int, default=100, help="images per forward pass")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default $DEEPNNK_CACHE, else ~/.cache/deepnnk/features)",
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    _add_data_args(p)

    p = sub.add_parser("evaluate", help="print a model's train and test accuracy")
    _add_model_args(p)
    _add_data_args(p)

    p = sub.add_parser(
        "gan",
        help="train the small CPU DCGAN of notebook 04 (resumable, a checkpoint per epoch)",
        description="Train deepnnk.nets.dcgan on the CIFAR-10 training images. Running it again "
        "with the same --out resumes after the last complete epoch.",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--epochs", type=int, default=8, help="default 8")
    p.add_argument("--width", type=int, default=32, help="channels of the widest layer (32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, default=50_000, help="training images (50000)")
    _add_data_args(p)

    p = sub.add_parser(
        "summary", help="print the headline metrics of every notebook in a results folder"
    )
    p.add_argument("folder", help="e.g. results/quick")
    return parser


def _load_data(args):
    """(x_train, y_train, x_test, y_test) from --data, cut to --limit images if given."""
    from deepnnk.nets.data import load_cifar10

    arrays = load_cifar10(args.data, verify=not args.no_verify)
    if args.limit is not None:
        if args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        arrays = tuple(a[: args.limit] for a in arrays)
    return arrays


def _load_model(args):
    """(model, description) for --checkpoint or --paper-model."""
    from deepnnk.nets.train import (
        CheckpointError,
        checkpoint_path,
        list_checkpoints,
        load_checkpoint,
    )

    if args.paper_model is not None:
        from deepnnk.nets.loading import load_network

        epoch = 20 if args.epoch is None else args.epoch
        model = load_network("paper", args.paper_model, epoch, data_root=args.data)
        return model, f"paper model {args.paper_model}, epoch {epoch}"
    if os.path.isdir(args.checkpoint):
        found = list_checkpoints(args.checkpoint)
        epoch = args.epoch if args.epoch is not None else max(found, default=None)
        if epoch is None:
            raise CheckpointError(f"no epoch_XX.pt checkpoints in {args.checkpoint}.")
        path = checkpoint_path(args.checkpoint, epoch)
        return load_checkpoint(path), str(path)
    if args.epoch is not None:
        raise ValueError("--epoch goes with a checkpoint directory or --paper-model, not a file.")
    return load_checkpoint(args.checkpoint), args.checkpoint


def _train_all(args) -> None:
    """Train the three models as parallel subprocesses, longest first (measured s/epoch here:
    regularised > overfit > underparameterised), so two workers finish together."""
    import subprocess
    import time

    order = ["regularised", "overfit", "underparameterised"]
    parent = args.out or "runs"
    passthrough = ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    passthrough += ["--batch-size", str(args.batch_size), "--lr", str(args.lr)]
    passthrough += ["--bias-init", args.bias_init]
    passthrough += ["--threads", str(args.threads)] + ["--quiet"] * args.quiet
    passthrough += ["--eval-train"] * args.eval_train + ["--no-eval-test"] * args.no_eval_test
    passthrough += ["--no-verify"] * args.no_verify
    if args.data:
        passthrough += ["--data", args.data]
    if args.limit is not None:
        passthrough += ["--limit", str(args.limit)]
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    start = time.perf_counter()
    pending, running, failed = list(order), {}, []
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            out = os.path.join(parent, name)
            cmd = [sys.executable, "-m", "deepnnk", "train", "--model", name, "--out", out]
            # Each model's progress bar and per-epoch lines go to its own log: two bars on one
            # terminal would garble each other.
            os.makedirs(parent, exist_ok=True)
            log_path = os.path.join(parent, f"{name}.log")
            with open(log_path, "w") as log:
                proc = subprocess.Popen(cmd + passthrough, stdout=log, stderr=subprocess.STDOUT)
            running[name] = (proc, time.perf_counter())
            print(f"started {name} -> {out} (progress: tail -f {log_path})", flush=True)
        time.sleep(0.5)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is not None:
                del running[name]
                took = (time.perf_counter() - t0) / 60
                print(f"finished {name}: exit {proc.returncode}, {took:.1f} min", flush=True)
                if proc.returncode != 0:
                    failed.append(name)
    wall = (time.perf_counter() - start) / 60
    print(f"all models: {wall:.1f} min wall-clock, {args.jobs} at a time")
    if failed:
        raise ValueError(
            f"training failed for {', '.join(failed)}; run the command again to resume."
        )


def _cmd_train(args) -> None:
    from deepnnk.nets.train import build_model, recipe, train

    if args.model == "all":
        _train_all(args)
        return
    spec = recipe(args.model)
    out = args.out or os.path.join("runs", spec.name)
    x_train, y_train, x_test, y_test = _load_data(args)
    model = build_model(spec, seed=args.seed, bias_init=args.bias_init)
    test = {} if args.no_eval_test else {"x_test": x_test, "y_test": y_test}
    if not args.quiet:
        print(
            f"training {spec.name} (C={spec.width}, regularised={spec.regularized}, "
            f"{args.bias_init} biases) into {out}"
        )
    history = train(
        model,
        x_train,
        y_train,
        checkpoint_dir=out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eval_train=args.eval_train,
        num_threads=args.threads,
        progress=not args.quiet,
        **test,
    )
    if history and not args.quiet:
        total = sum(r["seconds"] + r.get("eval_seconds", 0.0) for r in history)
        print(f"done: {len(history)} epoch(s) in {out}, {total / 60:.1f} min of compute in all")


def _cmd_features(args) -> None:
    import numpy as np

    from deepnnk.nets.features import atomic_write, extract

    x_train, y_train, x_test, y_test = _load_data(args)
    model, described = _load_model(args)
    cache = False if args.no_cache else args.cache_dir
    feats = {
        split: extract(model, x, args.batch_size, layer=args.layer, cache_dir=cache)
        for split, x in (("train", x_train), ("test", x_test))
    }
    arrays = {
        "train_features": feats["train"],
        "train_labels": y_train,
        "test_features": feats["test"],
        "test_labels": y_test,
        "layer": np.array(args.layer),
        "source": np.array(described),
    }
    atomic_write(args.out, lambda f: np.savez(f, **arrays))
    print(
        f"wrote {args.out}: {args.layer} of {described}, train {feats['train'].shape}, "
        f"test {feats['test'].shape}"
    )


def _cmd_gan(args) -> None:
    from deepnnk.nets.dcgan import GANConfig, build_dcgan, n_parameters, train_dcgan

    x_train = _load_data(args)[0]
    config = GANConfig(width=args.width, seed=args.seed, n_train=min(args.n_train, len(x_train)))
    gen, disc = build_dcgan(config)
    print(
        f"DCGAN w={config.width}: generator {n_parameters(gen):,} and discriminator "
        f"{n_parameters(disc):,} parameters, into {args.out}"
    )
    history = train_dcgan(
        x_train, args.out, epochs=args.epochs, config=config, num_threads=args.threads
    )[1]
    print(f"done: {len(history)} epoch(s), {sum(h['seconds'] for h in history) / 60:.1f} min")


def _cmd_evaluate(args) -> None:
    from deepnnk.nets.train import accuracy

    x_train, y_train, x_test, y_test = _load_data(args)
    model, described = _load_model(args)
    train_acc = accuracy(model, x_train, y_train)
    test_acc = accuracy(model, x_test, y_test)
    print(
        f"{described}: train accuracy {100 * train_acc:.2f}%, test accuracy {100 * test_acc:.2f}%"
    )
    if args.paper_model is not None and (args.epoch or 20) == 20 and args.limit is None:
        from deepnnk.nets.paper import PAPER_ACCURACY, paper_model

        logged = PAPER_ACCURACY[paper_model(args.paper_model).name]
        print(f"  the authors logged train {logged['train']:.2f}%, test {logged['test']:.2f}%")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 a reported error)."""
    args = build_parser().parse_args(argv)
    if args.command == "summary":
        from deepnnk.studies.reporting import print_summary

        return print_summary(args.folder)
    import torch

    from deepnnk.nets.data import DataError
    from deepnnk.nets.train import CheckpointError, tune_allocator

    if args.threads < 1:
        print("error: --threads must be at least 1", file=sys.stderr)
        return 1
    tune_allocator()  # the CLI owns its process: keep freed activations instead of re-faulting
    commands = {
        "train": _cmd_train,
        "features": _cmd_features,
        "evaluate": _cmd_evaluate,
        "gan": _cmd_gan,
    }
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        commands[args.command](args)
    except (DataError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = "; run the same command again to resume" if args.command == "train" else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads_before)
    return 0
