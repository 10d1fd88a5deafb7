"""A quick identifiability probe, logged by the training, replay and search jobs: slot
matching by R² of polynomial ridge regressions. (The experiment's score, with MLP readouts and
categorical factors, is `compgen.evaluation.identifiability`.)

For inferred slots ẑ [N, K, m̂] and true latents z [N, K, m]: fit, on a fit set, a ridge
regression from degree-`degree` polynomial features of each (standardised) inferred slot i to
each true slot j; match slots by the Hungarian algorithm on the fit-set R²; apply the matched
readouts unchanged to a test set and report R² per true slot and factor.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize


def polynomial_features(x: np.ndarray, degree: int) -> np.ndarray:
  """[N, d] -> [N, F]: all monomials of degree 1..degree (and a constant column)."""
  cols = [np.ones((len(x), 1))]
  for deg in range(1, degree + 1):
    for idx in itertools.combinations_with_replacement(range(x.shape[1]), deg):
      cols.append(np.prod(x[:, idx], axis=1, keepdims=True))
  return np.concatenate(cols, axis=1)


def _fit(features, targets, ridge):
  gram = features.T @ features + ridge * len(features) * np.eye(features.shape[1])
  return np.linalg.solve(gram, features.T @ targets)


def r2_score(y: np.ndarray, pred: np.ndarray, var: np.ndarray) -> np.ndarray:
  """Per-column R² = 1 − MSE / Var with the fit set's variance `var`: [N, d] -> [d]."""
  return 1.0 - ((y - pred) ** 2).mean(0) / np.maximum(var, 1e-12)


def readout_degree(num_examples: int, dim: int, max_degree: int = 3) -> int:
  """The largest polynomial degree <= max_degree with >= 10 fit examples per feature."""
  for degree in range(max_degree, 1, -1):
    if num_examples >= 10 * polynomial_features(np.zeros((1, dim)), degree).shape[1]:
      return degree
  return 1


def matched_r2(z_hat_fit: np.ndarray, z_fit: np.ndarray, z_hat_test: np.ndarray,
               z_test: np.ndarray, degree: int | None = None, ridge: float = 1e-3) -> dict:
  """Returns {"mean": float, "per_factor": [K, m] R² on the test set, "assignment": [K]}.

  `degree` None picks `readout_degree(len(z_fit), m̂)`, so small fit sets do not overfit.
  """
  k_hat, k = z_hat_fit.shape[1], z_fit.shape[1]
  degree = degree or readout_degree(len(z_fit), z_hat_fit.shape[2])
  if k_hat != k:
    raise ValueError(f"{k_hat} inferred slots vs {k} true slots: counts must agree.")
  mu = z_hat_fit.mean(0, keepdims=True)
  sd = z_hat_fit.std(0, keepdims=True) + 1e-6
  feats_fit = [polynomial_features(((z_hat_fit - mu) / sd)[:, i], degree) for i in range(k)]
  feats_test = [polynomial_features(((z_hat_test - mu) / sd)[:, i], degree) for i in range(k)]
  var = z_fit.var(0)  # [K, m]
  weights, score = {}, np.zeros((k, k))
  for i, j in itertools.product(range(k), range(k)):
    w = _fit(feats_fit[i], z_fit[:, j], ridge)
    weights[i, j] = w
    score[i, j] = r2_score(z_fit[:, j], feats_fit[i] @ w, var[j]).mean()
  rows, cols = optimize.linear_sum_assignment(-score)
  per_factor = np.zeros(z_test.shape[1:])
  for i, j in zip(rows, cols):
    per_factor[j] = r2_score(z_test[:, j], feats_test[i] @ weights[i, j], var[j])
  return {"mean": float(per_factor.mean()), "per_factor": per_factor,
          "assignment": cols[np.argsort(rows)], "degree": degree}
