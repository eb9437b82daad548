"""A small DCGAN for CIFAR-10 that trains on a 2-core CPU, checkpointed like the classifiers.

The architecture is Radford et al. (2016) at 32×32 with a width parameter ``w``:

- generator: z ``[N, nz]`` → ConvT 4×4 to ``4w×4×4`` → ``2w×8×8`` → ``w×16×16`` → ``3×32×32``,
  BatchNorm + ReLU between, tanh at the end (pixels in [-1, 1]);
- discriminator: the mirror image, strided 4×4 convolutions with LeakyReLU(0.2) and BatchNorm,
  ending in one logit.

Training is the standard non-saturating GAN loss with Adam (lr 2e-4, β1 = 0.5). A checkpoint
``gan_epoch_XX.pt`` is written atomically after every epoch; calling :func:`train_dcgan` again
with the same directory resumes after the last one, and the resumed run gives the same weights
as an uninterrupted one (the visiting order and the noise of each epoch depend on
``(seed, epoch)`` only). A directory written with another configuration is refused.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from deepnnk.nets.features import array_digest, atomic_write, check_images
from deepnnk.nets.train import (
    CheckpointError,
    _stream_seed,
    list_checkpoints,
    load_checkpoint_file,
    torch_threads,
)

GAN_FORMAT = "deepnnk.dcgan/1"  # the tag inside saved files: unchanged by the move to nets/
_GAN_RE = re.compile(r"^gan_epoch_(\d+)\.pt$")
_STREAM_PLAN = 10
_STREAM_INIT = 11


@dataclass(frozen=True)
class GANConfig:
    """What a DCGAN run is: width ``w`` (channels of the widest-resolution layer), latent size,
    batch size, Adam learning rate and β1, the seed, and how many training images it sees."""

    width: int = 32
    nz: int = 64
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    seed: int = 0
    n_train: int = 50_000


class Generator(nn.Module):
    """z ``[N, nz]`` → images ``[N, 3, 32, 32]`` in [-1, 1]."""

    def __init__(self, width: int = 32, nz: int = 64):
        super().__init__()
        w = width
        self.nz = nz
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, 4 * w, 4, 1, 0, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(True),
            nn.ConvTranspose2d(w, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """Images ``[N, 3, 32, 32]`` in [-1, 1] → real-vs-fake logits ``[N]``."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 1, 4, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _init_weights(module: nn.Module) -> None:
    # Radford et al.: N(0, 0.02) for convolutions, N(1, 0.02) for BatchNorm scales.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_dcgan(config: GANConfig) -> tuple[Generator, Discriminator]:
    """A freshly initialised (generator, discriminator) pair, seeded by ``config.seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_stream_seed(config.seed, _STREAM_INIT))
        gen = Generator(config.width, config.nz)
        disc = Discriminator(config.width)
        gen.apply(_init_weights)
        disc.apply(_init_weights)
    return gen, disc


def n_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- checkpoints


def gan_checkpoint_path(checkpoint_dir: str | os.PathLike, epoch: int) -> Path:
    """``<checkpoint_dir>/gan_epoch_XX.pt``."""
    return Path(checkpoint_dir) / f"gan_epoch_{int(epoch):02d}.pt"


def list_gan_checkpoints(checkpoint_dir: str | os.PathLike) -> dict[int, Path]:
    """``{epoch: path}`` of the DCGAN checkpoints in a directory (temp files are ignored)."""
    return list_checkpoints(checkpoint_dir, _GAN_RE)


def read_gan_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict; :class:`~deepnnk.nets.train.CheckpointError` naming the file when
    it is missing, unreadable or not a deepnnk DCGAN checkpoint."""
    return load_checkpoint_file(
        path,
        kind="DCGAN checkpoint",
        format=GAN_FORMAT,
        needed={"format", "config", "epoch", "generator", "discriminator", "opt_g", "opt_d"},
        on_corrupt="train_dcgan() will retrain that epoch",
    )


def load_generator(checkpoint_dir: str | os.PathLike, epoch: int | None = None) -> Generator:
    """The generator of a checkpoint directory (default: its latest epoch), in eval mode."""
    found = list_gan_checkpoints(checkpoint_dir)
    if not found:
        raise CheckpointError(
            f"no gan_epoch_XX.pt checkpoints in {checkpoint_dir}: train one with "
            "deepnnk.nets.dcgan.train_dcgan or `python -m deepnnk gan`."
        )
    epoch = max(found) if epoch is None else int(epoch)
    if epoch not in found:
        raise CheckpointError(f"no checkpoint for epoch {epoch} in {checkpoint_dir}.")
    state = read_gan_checkpoint(found[epoch])
    cfg = state["config"]
    gen = Generator(cfg["width"], cfg["nz"])
    gen.load_state_dict(state["generator"])
    return gen.eval()


def to_gan_range(images_u8) -> torch.Tensor:
    """uint8 ``[N, 32, 32, 3]`` → float32 ``[N, 3, 32, 32]`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2)
    return x.float().div_(127.5).sub_(1.0).contiguous()


def epoch_seconds(checkpoint_dir: str | os.PathLike) -> list[float]:
    """Training seconds of each epoch, from the latest checkpoint's history."""
    found = list_gan_checkpoints(checkpoint_dir)
    if not found:
        return []
    return [h["seconds"] for h in read_gan_checkpoint(found[max(found)])["history"]]


# --------------------------------------------------------------------------- training


def train_dcgan(
    x_train,
    checkpoint_dir: str | os.PathLike,
    *,
    epochs: int,
    config: GANConfig = GANConfig(),
    num_threads: int | None = None,
    progress: bool = True,
) -> tuple[Generator, list[dict]]:
    """Train a DCGAN on uint8 images ``x_train [N, 32, 32, 3]`` (the first ``config.n_train``);
    resume from ``checkpoint_dir`` when it holds checkpoints of the same configuration.

    Returns (generator in eval mode, history). History entries: ``epoch``, ``loss_d``, ``loss_g``
    (means over the epoch's steps), ``d_real`` / ``d_fake`` (mean discriminator probability on
    real and generated batches), ``seconds``.
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    x_train = check_images(x_train, "x_train")
    if not isinstance(x_train, np.ndarray) or x_train.dtype != np.uint8:
        raise ValueError("train_dcgan takes uint8 images [N, 32, 32, 3] as loaded by load_cifar10.")
    if config.n_train > len(x_train):
        raise ValueError(
            f"config.n_train = {config.n_train} but only {len(x_train)} images were given; "
            "lower n_train or pass more images."
        )
    x_train = x_train[: config.n_train]
    meta = {**asdict(config), "data_digest": array_digest(x_train).hexdigest()}
    checkpoint_dir = Path(checkpoint_dir)
    gen, disc = build_dcgan(config)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    say = tqdm.write if progress else (lambda *_a, **_k: None)

    history: list[dict] = []
    start = 0
    existing = list_gan_checkpoints(checkpoint_dir)
    if existing:
        last = max(existing)
        # A run trained further than asked serves the asked epoch when that checkpoint is there.
        state = read_gan_checkpoint(
            existing.get(epochs, existing[last]) if last > epochs else existing[last]
        )
        if state["config"] != meta:
            diffs = [k for k in meta if state["config"].get(k) != meta[k]]
            raise CheckpointError(
                f"{checkpoint_dir} holds a DCGAN trained with another configuration "
                f"({', '.join(diffs)} differ), so it will not be resumed. Use another "
                "checkpoint_dir, or delete it to start over."
            )
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        history = list(state["history"])[: state["epoch"]]
        start = state["epoch"]
        if start >= epochs:
            return gen.eval(), history
        say(f"{checkpoint_dir}: resuming the DCGAN after epoch {start} of {epochs}.")

    x = to_gan_range(x_train)
    n = len(x)
    bs = config.batch_size
    steps = n // bs  # drop the ragged last batch: BatchNorm statistics of a tiny batch are noise
    gen.train()
    disc.train()
    with torch_threads(num_threads):
        for epoch in range(start + 1, epochs + 1):
            g = torch.Generator().manual_seed(_stream_seed(config.seed, _STREAM_PLAN, epoch))
            order = torch.randperm(n, generator=g)
            sums = np.zeros(4)
            bar_args = {} if progress else {"disable": True}
            t0 = time.perf_counter()
            for s in tqdm(
                range(steps), desc=f"DCGAN epoch {epoch}/{epochs}", leave=False, **bar_args
            ):
                real = x[order[s * bs : (s + 1) * bs]]
                z = torch.randn(bs, config.nz, generator=g)
                fake = gen(z)
                # Discriminator: real → 1, fake → 0 (the fake detached: G is not updated here).
                out_real = disc(real)
                out_fake = disc(fake.detach())
                loss_d = F.binary_cross_entropy_with_logits(
                    out_real, torch.ones_like(out_real)
                ) + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                # Generator: the non-saturating loss, −log D(G(z)).
                out = disc(fake)
                loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                with torch.no_grad():
                    sums += (
                        loss_d.item(),
                        loss_g.item(),
                        torch.sigmoid(out_real).mean().item(),
                        torch.sigmoid(out_fake).mean().item(),
                    )
            seconds = time.perf_counter() - t0
            m = sums / max(steps, 1)
            record = dict(epoch=epoch, seconds=seconds)
            record |= {
                key: float(v)
                for key, v in zip(("loss_d", "loss_g", "d_real", "d_fake"), m, strict=True)
            }
            history.append(record)
            state = {
                "format": GAN_FORMAT,
                "config": meta,
                "epoch": epoch,
                "generator": gen.state_dict(),
                "discriminator": disc.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "history": history,
            }
            _save(gan_checkpoint_path(checkpoint_dir, epoch), state)
            say(
                f"DCGAN epoch {epoch}/{epochs}: loss D {m[0]:.3f}, G {m[1]:.3f}, "
                f"D(real) {m[2]:.2f}, D(fake) {m[3]:.2f}, {seconds:.1f} s"
            )
    return gen.eval(), history


def _save(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


@torch.no_grad()
def sample_images(gen: Generator, n: int, seed: int = 0, batch_size: int = 500) -> np.ndarray:
    """``n`` generated images as uint8 ``[n, 32, 32, 3]`` (quantised like real CIFAR-10 images),
    from latent noise drawn with ``seed``. The generator runs in eval mode (BatchNorm running
    statistics), so a sample does not depend on the batch it is drawn in."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    was_training = gen.training
    gen.eval()
    g = torch.Generator().manual_seed(_stream_seed(int(seed), _STREAM_PLAN, 0))
    z = torch.randn(n, gen.nz, generator=g)
    out = []
    for i in range(0, n, batch_size):
        img = gen(z[i : i + batch_size]).add_(1.0).mul_(127.5)
        out.append(img.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    gen.train(was_training)
    return np.concatenate(out)


def sample_grid(images_u8: np.ndarray, rows: int = 8, cols: int = 8, pad: int = 2) -> np.ndarray:
    """Tile the first ``rows·cols`` uint8 HWC images into one uint8 image, white padding."""
    n = rows * cols
    if len(images_u8) < n:
        raise ValueError(f"need {n} images for a {rows}×{cols} grid, got {len(images_u8)}.")
    h, w = images_u8.shape[1:3]
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = images_u8[i]
    return grid


def steps_per_epoch(config: GANConfig) -> int:
    """Optimisation steps per epoch (the ragged last batch is dropped)."""
    return config.n_train // config.batch_size


__all__ = [
    "GANConfig",
    "Generator",
    "Discriminator",
    "build_dcgan",
    "n_parameters",
    "train_dcgan",
    "load_generator",
    "sample_images",
    "sample_grid",
    "epoch_seconds",
]
