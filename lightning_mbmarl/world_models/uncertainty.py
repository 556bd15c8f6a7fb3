"""Epistemic uncertainty of an ensemble's predictions (MOMA-PPO §3.1): disagreement between members.

Both estimators use the unbiased (``E - 1``) normalisation and need at least two members.
"""

from __future__ import annotations

import torch


def reward_variance(rewards: torch.Tensor) -> torch.Tensor:
    """``eps_r`` [B]: unbiased variance over members of the predicted rewards ``rewards`` [E, B]."""
    return rewards.float().var(dim=0, correction=1)


def covariance_frobenius_norm(x: torch.Tensor) -> torch.Tensor:
    """``eps_g`` [B]: Frobenius norm of the members' covariance of the prediction vectors ``x`` [E, B, D].

    With ``X`` the centred predictions of one sample (E x D), the covariance is ``C = X^T X / (E - 1)`` (D x D).
    ``X^T X`` and the Gram matrix ``X X^T`` (E x E) have the same non-zero eigenvalues (the squared singular
    values of ``X``), so ``||X^T X||_F = ||X X^T||_F``: we form the E x E Gram matrix instead, cost O(E^2 D)
    per sample rather than O(E D^2), and never materialise a D x D matrix.
    """
    x = x.float()
    centred = x - x.mean(dim=0, keepdim=True)
    gram = torch.einsum("ebd,fbd->bef", centred, centred)
    return torch.linalg.matrix_norm(gram, ord="fro") / (x.shape[0] - 1)
