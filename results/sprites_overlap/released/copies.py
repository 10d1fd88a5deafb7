"""Is either slot the whole scene? At one checkpoint of a Transformer VAE, the ID error (MSE)
on the first 256 training images with z = μ; with slot 0's μ in both slots; with the slots'
mean in both; and for a VAE, with both slots sampled from q(z|x) independently (as in
training, 8 draws) and with one sample copied into both slots.

  python results/sprites_overlap/released/copies.py --workdir=W --step=7500 \
    --config=configs/sprites.py:long16,transformer_vae_released [--set=KEY=VALUE ...]
"""
import json

import jax
import jax.numpy as jnp
import numpy as np

from compgen import models

from attention import checkpoint_params, run_config, run_parser


def main():
  parser = run_parser(__doc__, examples=256)
  parser.add_argument("--step", type=int, required=True)
  parser.add_argument("--draws", type=int, default=8)
  args = parser.parse_args()
  config, _, ex = run_config(args)
  x = models.model_input(ex)
  model, _, restore = checkpoint_params(config, args.workdir, ex)
  params = restore(args.step)
  encoded = model.encode(params, x)
  mu = encoded["mean"]
  mse = lambda z: float(((model.decode(params, z)["output"] - x) ** 2).mean())
  result = {"mu": mse(mu), "mu_slot0_twice": mse(mu.at[:, 1].set(mu[:, 0])),
            "mu_mean_twice": mse(jnp.broadcast_to(mu.mean(1, keepdims=True), mu.shape))}
  if "logvar" in encoded:  # a VAE: the posterior's samples too
    sd = jnp.exp(0.5 * encoded["logvar"])
    samples = [mu + sd * jax.random.normal(jax.random.PRNGKey(r), mu.shape)
               for r in range(args.draws)]
    result.update(independent=float(np.mean([mse(z) for z in samples])),
                  copied_sample=float(np.mean([mse(z.at[:, 1].set(z[:, 0])) for z in samples])))
  print(json.dumps(result))


if __name__ == "__main__":
  main()
