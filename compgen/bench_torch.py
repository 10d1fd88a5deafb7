"""The PyTorch reference for `compgen.bench`: the alpha-compositing decoder and Adam search,
written the way a PyTorch user would (batched autograd), with the weights of a Flax
`AlphaDecoder` copied in so both compute the same function. Needs the `bench` extra
(`pip install -e .[bench]`, torch==2.13.0, CPU build).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def alpha_decoder(flax_params: dict, pixel_features: np.ndarray, image_shape: tuple):
  """A torch function z [B, K, m] -> images [B, H, W, C] equal to the Flax AlphaDecoder."""
  p = flax_params["params"] if "params" in flax_params else flax_params
  t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)
  mlp = p["_SlotPixelMLP_0"]
  slot_w, slot_b = t(mlp["slot_in"]["kernel"]), t(mlp["slot_in"]["bias"])
  pixel = t(pixel_features) @ t(mlp["pixel_in"]["kernel"])  # [P, H0]
  layers = [(t(d["kernel"]), t(d["bias"]))
            for _, d in sorted(mlp["MLP_0"].items(), key=lambda kv: int(kv[0].split("_")[1]))]
  bg_rgb, bg_logit = t(p["background_rgb"]), t(p["background_logit"])
  h_img, w_img, c = image_shape

  def decode(z: torch.Tensor) -> torch.Tensor:
    b, k, _ = z.shape
    z = torch.cat([z, torch.eye(k).expand(b, k, k)], dim=-1)
    h = F.gelu((z @ slot_w + slot_b)[:, :, None, :] + pixel, approximate="tanh")
    for i, (w, bias) in enumerate(layers):
      h = h @ w + bias
      if i < len(layers) - 1:
        h = F.gelu(h, approximate="tanh")
    rgb = torch.sigmoid(h[..., :c])  # [B, K, P, C]
    logits = torch.cat([h[..., c], bg_logit.expand(b, 1, h.shape[2])], dim=1)
    masks = torch.softmax(logits, dim=1)  # [B, K+1, P]
    colours = torch.cat([rgb, torch.sigmoid(bg_rgb).expand(b, 1, h.shape[2], c)], dim=1)
    return torch.einsum("bkp,bkpc->bpc", masks, colours).reshape(b, h_img, w_img, c)
  return decode


def search(decode, x: np.ndarray, z0: np.ndarray, steps: int, learning_rate: float):
  """Adam on z for each image (the summed per-image MSEs give per-image gradients; Adam is
  elementwise, so this is per-image Adam): returns the final per-image MSE [B]."""
  x = torch.tensor(np.asarray(x), dtype=torch.float32)
  z = torch.tensor(np.asarray(z0), dtype=torch.float32, requires_grad=True)
  opt = torch.optim.Adam([z], lr=learning_rate)
  for _ in range(steps):
    opt.zero_grad(set_to_none=True)
    loss = ((decode(z) - x) ** 2).mean(dim=(1, 2, 3)).sum()
    loss.backward()
    opt.step()
  with torch.no_grad():
    return ((decode(z) - x) ** 2).mean(dim=(1, 2, 3)).numpy()


class CNNEncoder(torch.nn.Module):
  """The Flax `CNNEncoder` (autoencoder head) with its weights: images [B, H, W, C] -> [B, K, m]."""

  def __init__(self, flax_params: dict, num_slots: int, slot_dim: int):
    super().__init__()
    p = flax_params["params"] if "params" in flax_params else flax_params
    t = lambda a: torch.nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float32))
    convs = sorted((k for k in p if k.startswith("Conv_")), key=lambda k: int(k[5:]))
    # Flax kernels are HWIO (4x4, stride 2, SAME padding).
    self.convs = torch.nn.ParameterList(
        [t(np.transpose(np.asarray(p[k]["kernel"]), (3, 2, 0, 1))) for k in convs])
    self.conv_biases = torch.nn.ParameterList([t(p[k]["bias"]) for k in convs])
    mlp = p["MLP_0"]
    self.dense = torch.nn.ParameterList(
        [t(mlp[f"Dense_{i}"][f]) for i in range(len(mlp)) for f in ("kernel", "bias")]
        + [t(p["slot_head"]["kernel"]), t(p["slot_head"]["bias"])])
    self.num_slots, self.slot_dim = num_slots, slot_dim

  def forward(self, x):
    h = x.permute(0, 3, 1, 2)
    for w, b in zip(self.convs, self.conv_biases):
      pads = []
      for size in (h.shape[3], h.shape[2]):  # SAME padding as XLA: (width, height) for F.pad
        total = max((-(-size // 2) - 1) * 2 + 4 - size, 0)
        pads += [total // 2, total - total // 2]
      h = F.gelu(F.conv2d(F.pad(h, pads), w, b, stride=2), approximate="tanh")
    h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # flatten in NHWC order, as Flax does
    d = list(self.dense)
    for i in range(0, len(d), 2):
      h = h @ d[i] + d[i + 1]
      if i < len(d) - 2:
        h = F.gelu(h, approximate="tanh")
    return h.reshape(-1, self.num_slots, self.slot_dim)


def replay_steps(encoder: CNNEncoder, decode, batch_size: int, steps: int,
                 learning_rate: float = 1e-4) -> float:
  """`steps` replay updates (z ~ N(0, I), x = decode(z) without gradient, Adam on
  ‖encoder(x) − z‖²); returns the last loss."""
  opt = torch.optim.Adam(encoder.parameters(), lr=learning_rate)
  for _ in range(steps):
    z = torch.randn(batch_size, encoder.num_slots, encoder.slot_dim)
    with torch.no_grad():
      x = decode(z)
    opt.zero_grad(set_to_none=True)
    loss = ((encoder(x) - z) ** 2).mean()
    loss.backward()
    opt.step()
  return float(loss)
