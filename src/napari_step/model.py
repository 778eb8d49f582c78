"""XResAttn, the STEP network, in plain PyTorch, and its self-describing checkpoints.

The network maps a track's per-frame displacements to one value per frame (log10 D or alpha):
1-D XResNet convolution blocks along time, a transformer encoder, and a per-frame linear head
squashed into a fixed output range by a sigmoid (Requena et al., arXiv 2302.00410).

A checkpoint carries the config, the weights, the training record and a model card, so loading
never asks the user to rebuild the architecture by hand. Checkpoints are loaded with
``torch.load(weights_only=True)``: a file that needs arbitrary unpickling is refused.

Frame convention: the card's ``frame_convention`` says which step the value at frame t describes.
``"forward"`` (every checkpoint written from now on): the step t -> t+1, the convention of the
STEP reference code and andi-datasets. A card without the entry is a legacy checkpoint
(``"backward"``: the step t-1 -> t); the inference core shifts its output by one frame.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "ModelConfig",
    "XResAttn",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "PAPER_D_CONFIG",
    "DEFAULT_D_CONFIG",
    "CHECKPOINT_FORMAT",
    "FRAME_CONVENTIONS",
    "checkpoint_frame_convention",
]

CHECKPOINT_FORMAT = "napari-step-checkpoint"
CHECKPOINT_VERSION = 1
FRAME_CONVENTIONS = ("forward", "backward")
LEGACY_FRAME_CONVENTION = "backward"  # what a card without a ``frame_convention`` entry means


@dataclass
class ModelConfig:
    """Every width and depth of XResAttn, plus how inputs and outputs are scaled.

    ``normalise``: divide displacements by the track's RMS step and predict log10 D relative to
    it, which makes the network exactly scale-equivariant (a track scaled by s gets D times s^2).
    ``target``: "log10_d" or "alpha". ``y_range``: the sigmoid's output range.
    """

    dim: int = 2
    target: str = "log10_d"
    stem: list = field(default_factory=lambda: [32])
    blocks: list = field(default_factory=lambda: [64, 128, 128])
    blocks_per_stage: list = field(default_factory=lambda: [1, 1, 1])
    kernel_size: int = 3
    n_encoder_layers: int = 2
    n_heads: int = 4
    dim_ff: int = 256
    dropout: float = 0.0
    pos_enc: bool = False
    normalise: bool = True
    y_range: list = field(default_factory=lambda: [-8.0, 3.0])
    min_length: int = 10

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """The config stored in a checkpoint; unknown keys raise :class:`CheckpointError`."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"unknown model config keys {sorted(unknown)}")
        return cls(**d)

    @property
    def in_channels(self) -> int:
        return self.dim + 1  # displacement per axis + log squared step length


# The paper's D model: about 8 M parameters, absolute (un-normalised) inputs.
PAPER_D_CONFIG = ModelConfig(
    stem=[64],
    blocks=[128, 256, 512],
    blocks_per_stage=[1, 1, 1],
    n_encoder_layers=4,
    n_heads=8,
    dim_ff=512,
    normalise=False,
    y_range=[-3.1, 3.1],
)
DEFAULT_D_CONFIG = ModelConfig()


class ConvBN(nn.Sequential):
    def __init__(self, ni, nf, k, act=True, zero_bn=False):
        bn = nn.BatchNorm1d(nf)
        if zero_bn:  # residual branch starts as identity (XResNet's trick)
            nn.init.zeros_(bn.weight)
        layers = [nn.Conv1d(ni, nf, k, padding=k // 2, bias=False), bn]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, ni, nf, k):
        super().__init__()
        self.convs = nn.Sequential(ConvBN(ni, nf, k), ConvBN(nf, nf, k, act=False, zero_bn=True))
        self.idpath = nn.Identity() if ni == nf else ConvBN(ni, nf, 1, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.convs(x) + self.idpath(x))


class SinusoidalPositions(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.d_model = d_model

    def forward(self, x):  # x: (B, T, C)
        t = torch.arange(x.shape[1], device=x.device, dtype=x.dtype)[:, None]
        i = torch.arange(0, self.d_model, 2, device=x.device, dtype=x.dtype)
        ang = t * torch.exp(-math.log(10000.0) * i / self.d_model)
        pe = torch.zeros(x.shape[1], self.d_model, device=x.device, dtype=x.dtype)
        pe[:, 0::2] = torch.sin(ang)
        pe[:, 1::2] = torch.cos(ang[:, : self.d_model // 2])
        return x + pe


class XResAttn(nn.Module):
    """Per-frame regression: (B, T, dim) positions -> (B, T) log10 D (or alpha).

    ``frame_convention`` ("forward" for a new model; a loaded checkpoint gets its card's entry):
    which step the output at frame t describes, see the module docstring.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.frame_convention = "forward"
        c = config
        if len(c.blocks) != len(c.blocks_per_stage):
            raise ValueError("blocks and blocks_per_stage must have the same length")
        layers, ni = [], c.in_channels
        for nf in c.stem:
            layers.append(ConvBN(ni, nf, c.kernel_size))
            ni = nf
        for nf, n in zip(c.blocks, c.blocks_per_stage):
            for _ in range(n):
                layers.append(ResBlock(ni, nf, c.kernel_size))
                ni = nf
        self.convs = nn.Sequential(*layers)
        self.pos = SinusoidalPositions(ni) if c.pos_enc else nn.Identity()
        enc_layer = nn.TransformerEncoderLayer(ni, c.n_heads, c.dim_ff, c.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(
            enc_layer, c.n_encoder_layers, enable_nested_tensor=False
        )
        self.head = nn.Linear(ni, 1)

    def features(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame input channels (B, T, dim + 1) and the per-track log10 scale (B, 1) added
        back to the output."""
        dx = torch.diff(positions, dim=1, prepend=positions[:, :1])
        dx[:, 0] = dx[:, 1]  # frame 0 has no incoming step: reuse the first one
        if self.config.normalise and self.config.target == "log10_d":
            ms = (dx**2).sum(-1).mean(1, keepdim=True).clamp_min(1e-30)  # (B, 1)
            dx = dx / ms.sqrt()[..., None]
            offset = torch.log10(ms / (2 * self.config.dim))
        elif self.config.normalise:  # scale-free targets (alpha) need no offset
            ms = (dx**2).sum(-1).mean(1, keepdim=True).clamp_min(1e-30)
            dx = dx / ms.sqrt()[..., None]
            offset = torch.zeros_like(ms)
        else:
            offset = torch.zeros(dx.shape[0], 1, device=dx.device, dtype=dx.dtype)
        logr2 = torch.log10((dx**2).sum(-1, keepdim=True) + 1e-8)
        return torch.cat([dx, logr2], dim=-1), offset

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        """Per-frame output for positions (B, T, dim) px, float32: (B, T) log10 D (px^2/frame)
        or alpha, in the model's ``frame_convention``."""
        x, offset = self.features(positions)
        x = self.convs(x.transpose(1, 2)).transpose(1, 2)
        x = self.encoder(self.pos(x))
        lo, hi = self.config.y_range
        # the head runs in float32 even under autocast: a bf16 sigmoid resolves 2^-9 of the
        # output range (0.02 decades of D), far coarser than the network's accuracy
        with torch.autocast(x.device.type, enabled=False):
            y = torch.sigmoid(self.head(x.float()).squeeze(-1)) * (hi - lo) + lo
        return y + offset


class CheckpointError(ValueError):
    """A model file that is missing, corrupt, foreign or unsafe."""


def save_checkpoint(
    path,
    model: XResAttn,
    record: dict | None = None,
    card: dict | None = None,
    optimizer=None,
    frame_convention: str | None = None,
) -> None:
    """Write config + weights + training record + model card (all plain data) atomically.

    Parameters
    ----------
    path : str or Path
        Destination file (written to ``<path>.tmp`` first, then renamed).
    model : XResAttn
        The network; its config and weights are stored.
    record, card : dict, optional
        Training record and model card (plain data).
    optimizer : torch.optim.Optimizer, optional
        Adds its state so training can resume; shipped weights leave it out.
    frame_convention : {"forward", "backward"}, optional
        Stored in the card. Default: the card's own entry when it has one, else ``"forward"``
        (labels made by this version's simulators: the value at frame t describes t -> t+1).
    """
    path = Path(path)
    card = dict(card or {})
    convention = frame_convention or card.get("frame_convention", "forward")
    if convention not in FRAME_CONVENTIONS:
        raise ValueError(f"frame_convention must be one of {FRAME_CONVENTIONS}, not {convention!r}")
    card["frame_convention"] = convention
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "record": record or {},
        "card": card,
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6
_PICKLE_MAGIC = b"\x80"  # the legacy format starts with a pickle protocol opcode


def _torch_load(path: Path) -> object:
    """``torch.load(weights_only=True)`` with every way a foreign file fails as CheckpointError."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint (it starts with {head!r}, not a zip archive or a "
            f"pickle); give a .pt file written by napari-step"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load, the file holds objects other than plain weights "
            f"(loading it could run code): {str(e).splitlines()[0]}"
        ) from None
    except (
        RuntimeError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        UnicodeDecodeError,
    ) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e!r})") from None


def read_checkpoint(path) -> dict:
    """Load and validate a checkpoint's dict without building the model.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.

    Returns
    -------
    dict
        ``format``, ``version``, ``config``, ``state_dict``, ``record``, ``card`` (and
        ``optimizer`` for training checkpoints).

    Raises
    ------
    CheckpointError
        Missing, unreadable, unsafe (needs arbitrary unpickling), foreign or too new a file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a napari-step checkpoint (no '{CHECKPOINT_FORMAT}' tag)"
        )
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {ckpt['version']} is newer than this napari-step "
            f"understands ({CHECKPOINT_VERSION}); upgrade napari-step"
        )
    for key in ("config", "state_dict"):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointError(f"{path}: checkpoint has no '{key}'")
    checkpoint_frame_convention(ckpt, path)  # validates the entry
    return ckpt


def checkpoint_frame_convention(ckpt: dict, path="checkpoint") -> str:
    """The card's ``frame_convention`` ("forward" or "backward"; missing means legacy
    "backward"), validated."""
    card = ckpt.get("card") or {}
    convention = card.get("frame_convention", LEGACY_FRAME_CONVENTION)
    if convention not in FRAME_CONVENTIONS:
        raise CheckpointError(
            f"{path}: unknown frame_convention {convention!r} in the model card "
            f"(expected one of {FRAME_CONVENTIONS})"
        )
    return convention


def load_checkpoint(path) -> tuple[XResAttn, dict]:
    """Build the model a checkpoint describes and load its weights.

    Parameters
    ----------
    path : str or Path
        As for :func:`read_checkpoint`.

    Returns
    -------
    model : XResAttn
        In eval mode, with ``model.frame_convention`` set from the card.
    checkpoint : dict
        As from :func:`read_checkpoint`.
    """
    ckpt = read_checkpoint(path)
    config = ModelConfig.from_dict(ckpt["config"])
    try:
        model = XResAttn(config)
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError) as e:
        msg = str(e).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the stored config ({msg})") from None
    model.frame_convention = checkpoint_frame_convention(ckpt, path)
    model.eval()
    return model, ckpt
