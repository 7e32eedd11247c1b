"""The CRNN: a CNN that turns the image into a sequence of column features, a
sequence model over them (a bidirectional RNN, or 1-D convolutions for arch "local"),
and a linear layer to C + 1 classes (blank = 0)."""

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn


# Each architecture: conv block widths and each block's max-pool (height, width),
# whether the blocks use BatchNorm, then the sequence model over the frames ("gru" and
# "lstm": bidirectional RNNs; "conv": 1-D convolutions with kernel "kernel").
ARCHS = {
    # Four conv blocks with BatchNorm; the width is pooled only twice, so a 150-px image
    # gives 37 frames (>= 2 * 5 + 1 for 5-character labels with repeats); a 2-layer BiGRU
    # (a BiLSTM runs 1.1-1.2x faster on the CPU under bf16, but, before init_blank_prior,
    # stayed on CTC's initial plateau after 600 steps of the CPU preset, where the BiGRU
    # left it after ~400).
    "default": dict(channels=[32, 64, 128, 192], pools=[[2, 2], [2, 2], [2, 1], [2, 1]], batch_norm=True,
                    rnn="gru", hidden=128, layers=2, dropout=0.1),
    # The same CNN, then two 1-D convolutions over the frames instead of the BiGRU: each
    # output frame sees a 42-px window of the image (a character is ~25 px wide), so CTC
    # emits every character over its own columns. The BiGRU sees the whole image and the
    # shipped one emits all five characters in its first three and last two frames,
    # wherever they stand, which transfers badly to a new style (the README's fine-tuning
    # curve). From scratch (before init_blank_prior) this one left CTC's initial plateau
    # much later than the BiGRU: train it from a BiGRU's CNN (--arch local --init CHECKPOINT).
    "local": dict(channels=[32, 64, 128, 192], pools=[[2, 2], [2, 2], [2, 1], [2, 1]], batch_norm=True,
                  rnn="conv", hidden=128, layers=2, dropout=0.1, kernel=3),
    # The default with a second convolution at full resolution before the first pool (a
    # [1, 1] pool: none), as the glyph classifier of benchmarks/glyph_ambiguity.py has
    # (it tells O from 0 several times better than the default reads them in whole
    # images). 1% more parameters, 1.6x the CNN's multiply-adds. In the CPU preset (light
    # augmentation, seeds 0 / 1) it read 91.86 / 91.63% of the 10k test images where
    # the default read 91.00-91.28%, with no fewer O/0 confusions: not the default.
    "stem": dict(channels=[32, 32, 64, 128, 192], pools=[[1, 1], [2, 2], [2, 2], [2, 1], [2, 1]], batch_norm=True,
                 rnn="gru", hidden=128, layers=2, dropout=0.1),
    # The reference design: 3 conv blocks pooled 2x2 -> 18 frames x (5 * 256 = 1280)
    # features, a 2-layer bidirectional LSTM with hidden size 128.
    "seed": dict(channels=[64, 128, 256], pools=[[2, 2], [2, 2], [2, 2]], batch_norm=False,
                 rnn="lstm", hidden=128, layers=2, dropout=0.0),
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild the model; saved inside every checkpoint."""

    alphabet: str
    arch: str = "default"
    height: int = 40
    width: int = 150
    arch_params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError("alphabet must be a non-empty string of distinct characters")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be positive, got {self.height}x{self.width}")
        if not self.arch_params:
            self.arch_params = copy.deepcopy(ARCHS[self.arch])

    @property
    def num_classes(self) -> int:
        return len(self.alphabet) + 1  # + blank at index 0


class FrameConv(nn.Module):
    """``layers`` 1-D convolutions (kernel ``kernel``, ReLU, dropout) over the frames of a
    (B, T, features) sequence; returns (B, T, hidden) and None, as an RNN module would."""

    def __init__(self, features: int, hidden: int, layers: int, kernel: int, dropout: float):
        super().__init__()
        blocks = []
        for i in range(layers):
            blocks += [nn.Conv1d(features if i == 0 else hidden, hidden, kernel, padding=kernel // 2),
                       nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> tuple:
        return self.net(x.transpose(1, 2)).transpose(1, 2), None


class CRNN(nn.Module):
    """Images (B, H, W) uint8, or float in [0, 1], to log-probs (B, T, C + 1) float32."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        arch = config.arch_params
        blocks, in_ch, height, width = [], 1, config.height, config.width
        for out_ch, pool in zip(arch["channels"], arch["pools"]):
            blocks += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not arch["batch_norm"])]
            blocks += [nn.BatchNorm2d(out_ch)] if arch["batch_norm"] else []
            blocks += [nn.ReLU(inplace=True)] + ([nn.MaxPool2d(pool)] if list(pool) != [1, 1] else [])
            in_ch, height, width = out_ch, height // pool[0], width // pool[1]
        if height < 1 or width < 1:
            raise ValueError(f"a {config.height}x{config.width} image is too small for arch {config.arch!r}")
        # channels_last: oneDNN's and cuDNN's convolutions run faster on NHWC (measured on
        # the 2-core CPU: 1.3-1.5x for a whole training step in float32).
        self.cnn = nn.Sequential(*blocks).to(memory_format=torch.channels_last)
        self.frames = width
        if arch["rnn"] == "conv":
            self.rnn = FrameConv(in_ch * height, 2 * arch["hidden"], arch["layers"], arch["kernel"], arch["dropout"])
        else:
            rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[arch["rnn"]]
            self.rnn = rnn_cls(in_ch * height, arch["hidden"], num_layers=arch["layers"], bidirectional=True,
                               batch_first=True, dropout=arch["dropout"] if arch["layers"] > 1 else 0.0)
        self.head = nn.Linear(2 * arch["hidden"], config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        x = ((images.unsqueeze(1) - 0.5) / 0.5).contiguous(memory_format=torch.channels_last)
        x = self.cnn(x)  # (B, C, H', T)
        x = x.flatten(1, 2).transpose(1, 2)  # (B, T, C * H')
        x, _ = self.rnn(x)
        return self.head(x).float().log_softmax(-1)


def transfer_weights(model: CRNN, state: dict, alphabet: str) -> str:
    """Loads ``state``, the weights of a CRNN of the same architecture and image size
    whose output layer reads ``alphabet``, into ``model``, whose alphabet may differ:
    every layer is copied except the output layer's rows, of which the blank's and
    those of the characters both alphabets share are copied, and the rest keep their
    fresh initialisation. Returns the shared characters."""
    index = {ch: i + 1 for i, ch in enumerate(alphabet)}
    rows = [0] + [index.get(ch, -1) for ch in model.config.alphabet]  # source row of each output row
    head = {name: state[f"head.{name}"] for name in ("weight", "bias")}
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    try:
        result = model.load_state_dict(body, strict=False)
    except RuntimeError as err:  # a tensor of another shape: another architecture or image size
        raise ValueError(f"the source weights do not fit this model: {err}") from None
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"the source weights are of another architecture (missing {missing}, "
                         f"unexpected {result.unexpected_keys})")
    with torch.no_grad():
        for name, value in head.items():
            target = getattr(model.head, name)
            if value.shape[1:] != target.shape[1:]:
                raise ValueError(f"the source model's output layer takes {tuple(value.shape[1:])} features, "
                                 f"this model's {tuple(target.shape[1:])}")
            for row, source in enumerate(rows):
                if source >= 0:
                    target[row] = value[source]
    return "".join(ch for ch in model.config.alphabet if ch in index)


def init_blank_prior(model: CRNN, mean_length: float) -> float:
    """Sets the output layer's biases of a fresh ``model`` so that, before training, it
    predicts blank with the probability ``p`` of a blank frame in a CTC alignment of
    labels ``mean_length`` long over ``model.frames`` frames (p = 1 - mean_length /
    frames, within [1 / classes, 0.99]), and every character equally: blank's bias
    log(p (C - 1) / (1 - p)), the others' 0. Returns p.

    From the default uniform output, CTC training first spends hundreds of steps on a
    plateau learning that most frames are blank; started at the blank's share it
    learns the characters at once (the README's "What each change to the CPU recipe
    bought": validation exact match 63.4 / 61.8 / 51.6% after 200 steps on the CPU
    preset's images for seeds 0-2, where the uniform start read 0% even after 400)."""
    if not mean_length >= 0:
        raise ValueError(f"mean_length must be a non-negative number, got {mean_length!r}")
    classes = model.config.num_classes
    p = min(max(1.0 - mean_length / model.frames, 1.0 / classes), 0.99)
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.bias[0] = math.log(p * (classes - 1) / (1 - p))
    return p


def transfer_cnn(model: CRNN, state: dict) -> None:
    """Loads the convolutional layers of ``state``, the weights of a CRNN of another
    architecture with the same CNN (channels, pooling, BatchNorm) and image size, into
    ``model``; its sequence and output layers keep their fresh initialisation."""
    cnn = {k: v for k, v in state.items() if k.startswith("cnn.")}
    mine = {k: v for k, v in model.state_dict().items() if k.startswith("cnn.")}
    if cnn.keys() != mine.keys() or any(cnn[k].shape != mine[k].shape for k in cnn):
        raise ValueError("the source model's CNN differs from this architecture's (channels, pooling or image size)")
    model.load_state_dict(cnn, strict=False)
