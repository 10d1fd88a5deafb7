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
