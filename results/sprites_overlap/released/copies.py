"""Is either slot the whole scene? At a checkpoint of the released-recipe Transformer VAE, the ID
error on 256 training images with z = μ; with slot 0's μ in both slots; with the slots' mean
in both; with both slots sampled independently (as in training, 8 draws); and with one sample
copied into both slots.

  python results/sprites_overlap/released/copies.py WORKDIR STEP [KEY=VALUE ...]
"""
import json
import sys

import jax, jax.numpy as jnp, numpy as np
import compgen
from compgen import models, parallel
from compgen.data import pipeline
from compgen.training import checkpoints, trained
wd, step = sys.argv[1], int(sys.argv[2]); sets = sys.argv[3:]
config = compgen.get_config("configs/sprites.py:long16,transformer_vae_released",
                            {k: json.loads(v) if v in ("false","true") else v for k, v in (a.split("=",1) for a in sets)} or None)
ex = trained.first_examples(pipeline.load_split(config.data, "train"), 256)
x = models.model_input(ex)
model = trained.build_model(config, ex)
shape = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x[:1]))
mesh = parallel.make_mesh(config.mesh)
abstract = checkpoints.abstract_state(shape, parallel.state_sharding(shape, mesh, 0))
ckpt = checkpoints.Checkpointer(wd, config.train.checkpoint_every, create=False)
params = ckpt.restore_params(step, abstract)[0]
enc = model.encode(params, x); mu, sd = enc["mean"], jnp.exp(0.5 * enc["logvar"])
err = lambda z: float(((model.decode(params, z)["output"] - x) ** 2).mean())
out = {"mu": err(mu), "sd_mean": float(sd.mean()), "mu_diff_norm": float(jnp.linalg.norm(mu[:,0]-mu[:,1],axis=-1).mean()),
       "mu_norm": float(jnp.linalg.norm(mu, axis=-1).mean()), "sd_norm": float(jnp.linalg.norm(sd, axis=-1).mean())}
ind, cop = [], []
for r in range(8):
  eps = jax.random.normal(jax.random.PRNGKey(r), mu.shape)
  z = mu + sd * eps
  ind.append(err(z)); cop.append(err(z.at[:, 1].set(z[:, 0])))
out.update(independent=float(np.mean(ind)), copied_sample=float(np.mean(cop)),
           mu_slot0_twice=err(mu.at[:, 1].set(mu[:, 0])), mu_mean_twice=err(jnp.broadcast_to(mu.mean(1, keepdims=True), mu.shape)))
print(json.dumps({k: round(v, 6) for k, v in out.items()}))
