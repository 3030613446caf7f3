"""A small PyTorch SiamFC tracker: the peer `track_speed.py` times ours against.

Written for this benchmark from the published architecture and tracking procedure of SiamFC
(Bertinetto et al. 2016) as the SiamFC-family PyTorch trackers run it (FDSiamFC, siamfc-pytorch):
AlexNet with channel groups 2 on conv2/4/5, BatchNorm + ReLU after conv1-4, max-pools after
conv1-2, inputs 0-255 RGB; crops padded with the frame's mean colour and resized with OpenCV;
response = cross-correlation x 0.001, up-sampled x16 bicubically with OpenCV; three scales with a
penalty, a cosine window, damped scale updates. `width` 0.3 gives FDSiamFC-30
(28/76/114/114/76 channels, loading `FDSiamfc_30.pth` or its `.npz`); width 1 is the
full-width SiamFC (random weights for timing).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FULL_CHANNELS = (96, 256, 384, 384, 256)


def alexnet_channels(width: float) -> tuple[int, ...]:
    """Channels at a width multiplier, rounded to even numbers as FDSiamFC does."""
    if width == 1.0:
        return FULL_CHANNELS
    return tuple(int(int(width * c / 2) * 2) for c in FULL_CHANNELS)


class AlexNet(nn.Module):
    """SiamFC's AlexNet; attribute names match FDSiamFC's state dict (`conv{i}.{0,1}`)."""

    def __init__(self, channels, bn_eps: float = 1e-6):
        super().__init__()
        c1, c2, c3, c4, c5 = channels

        def block(c_in, c_out, kernel, stride, groups, norm=True, pool=False):
            layers = [nn.Conv2d(c_in, c_out, kernel, stride, groups=groups)]
            if norm:
                layers += [nn.BatchNorm2d(c_out, eps=bn_eps), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            return nn.Sequential(*layers)

        self.conv1 = block(3, c1, 11, 2, 1, pool=True)
        self.conv2 = block(c1, c2, 5, 1, 2, pool=True)
        self.conv3 = block(c2, c3, 3, 1, 1)
        self.conv4 = block(c3, c4, 3, 1, 2)
        self.conv5 = block(c4, c5, 3, 1, 2, norm=False)

    def forward(self, x):
        return self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))


class SiamNet(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.backbone = AlexNet(channels)


def build_net(width: float, weights: str | None = None, seed: int = 0) -> SiamNet:
    """The network at `width`, with FDSiamFC's weights (`.pth` or `.npz`) or random ones."""
    torch.manual_seed(seed)
    net = SiamNet(alexnet_channels(width))
    if weights:
        if weights.endswith(".npz"):
            with np.load(weights) as data:
                state = {k: torch.from_numpy(np.asarray(v)) for k, v in data.items()}
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state))
        missing, unexpected = net.load_state_dict(state, strict=False)
        if [m for m in missing if "num_batches_tracked" not in m] or unexpected:
            raise ValueError(f"{weights}: missing {missing}, unexpected {unexpected}")
    else:
        # Random but non-degenerate BatchNorm statistics, so timing sees real numbers.
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 2.0)
    return net.eval()


def crop_patch(image: np.ndarray, center_xy, side: float, out_size: int,
               mean_colour: np.ndarray) -> np.ndarray:
    """A square mean-padded window of `side` frame pixels around the centre, resized (OpenCV)."""
    size = int(round(side))
    x0 = int(round(center_xy[0] - (size - 1) / 2))
    y0 = int(round(center_xy[1] - (size - 1) / 2))
    height, width = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + size - width, y0 + size - height)
    if pad > 0:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT,
                                   value=mean_colour.tolist())
    patch = image[y0 + pad:y0 + pad + size, x0 + pad:x0 + pad + size]
    return cv2.resize(patch, (out_size, out_size), interpolation=cv2.INTER_LINEAR)


class TorchSiamFC:
    """The SiamFC tracking loop (got10k contract: `init(image, box)`, `update(image) -> box`)."""

    def __init__(self, net: SiamNet, scale_step=1.0375, scale_penalty=0.9745,
                 window_influence=0.176, scale_lr=0.59, context=0.5, response_up=16,
                 exemplar_size=127, search_size=255, stride=8, response_size=17):
        self.net = net
        self.scale_penalty, self.window_influence, self.scale_lr = (
            scale_penalty, window_influence, scale_lr)
        self.context, self.response_up, self.stride = context, response_up, stride
        self.exemplar_size, self.search_size = exemplar_size, search_size
        self.scale_factors = scale_step ** np.linspace(-1, 1, 3)
        self.upscale = response_up * response_size
        hann = np.hanning(self.upscale)
        self.window = np.outer(hann, hann)
        self.window /= self.window.sum()

    def _frame(self, image):
        return np.asarray(image, np.float32)

    @torch.inference_mode()
    def init(self, image, box):
        image = self._frame(image)
        x, y, w, h = (float(v) for v in box)
        self.center = np.array([x + w / 2, y + h / 2])
        self.target = np.array([w, h])
        pad = self.context * (w + h)
        self.z_side = float(np.sqrt((w + pad) * (h + pad)))
        self.x_side = self.z_side * self.search_size / self.exemplar_size
        mean = image.mean(axis=(0, 1))
        z = crop_patch(image, self.center, self.z_side, self.exemplar_size, mean)
        self.kernel = self.net.backbone(torch.from_numpy(z).permute(2, 0, 1)[None].contiguous())

    @torch.inference_mode()
    def update(self, image):
        image = self._frame(image)
        mean = image.mean(axis=(0, 1))
        x = np.stack([crop_patch(image, self.center, self.x_side * f, self.search_size, mean)
                      for f in self.scale_factors])
        features = self.net.backbone(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())
        responses = F.conv2d(features, self.kernel) * 0.001  # [3, 1, 17, 17]
        responses = responses[:, 0].numpy()
        up = np.stack([cv2.resize(r, (self.upscale, self.upscale),
                                  interpolation=cv2.INTER_CUBIC) for r in responses])
        peaks = up.reshape(3, -1).max(axis=1)
        peaks[[0, 2]] *= self.scale_penalty
        best = int(np.argmax(peaks))
        response = up[best] - up[best].min()
        response /= response.sum() + 1e-16
        response = (1 - self.window_influence) * response + self.window_influence * self.window
        loc = np.array(np.unravel_index(response.argmax(), response.shape), np.float64)
        displacement = (loc - (self.upscale - 1) / 2) * self.stride / self.response_up
        displacement *= self.x_side * self.scale_factors[best] / self.search_size
        self.center += displacement[::-1]  # (row, col) -> (x, y)
        scale = (1 - self.scale_lr) + self.scale_lr * self.scale_factors[best]
        self.target *= scale
        self.z_side *= scale
        self.x_side *= scale
        return np.concatenate([self.center - self.target / 2, self.target])
