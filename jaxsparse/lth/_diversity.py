"""Ensemble diversity of classifiers from their logits: disagreement, KL, JS and ensemble accuracy."""

import numpy as np
from scipy.special import log_softmax

__all__ = ["ensemble_diversity"]


def ensemble_diversity(logits: list, labels) -> dict:
    """Pairwise diversity and the accuracy of the softmax-averaging ensemble of two or more models.

    Args:
      logits: list of `[n, classes]` logits, one per member.
      labels: `[n]` integer labels.

    Returns:
      `{"disagreement", "kl", "js", "ensemble_accuracy", "member_accuracy", "ensemble_gain"}`: disagreement is
      the mean over pairs of the fraction of inputs whose argmax differs; kl the mean over ordered pairs of
      KL(p_i || p_j); js the mean over pairs of the Jensen-Shannon divergence (nats); ensemble_gain =
      ensemble_accuracy - mean member accuracy.
    """
    if not isinstance(logits, list | tuple) or len(logits) < 2:
        raise ValueError("logits must be a list of at least two [n, classes] arrays")
    logp = [log_softmax(np.asarray(z, dtype=np.float64), axis=-1) for z in logits]
    labels = np.asarray(labels)
    if any(lp.shape != logp[0].shape or lp.ndim != 2 for lp in logp) or labels.shape != (logp[0].shape[0],):
        raise ValueError(f"logits must share one [n, classes] shape and labels be [n]; got {[lp.shape for lp in logp]}")
    probs = [np.exp(lp) for lp in logp]
    preds = [lp.argmax(-1) for lp in logp]
    dis, kl, js = [], [], []
    for i in range(len(logp)):
        for j in range(len(logp)):
            if i == j:
                continue
            kl.append(float(np.mean(np.sum(probs[i] * (logp[i] - logp[j]), -1))))
            if i < j:
                dis.append(float(np.mean(preds[i] != preds[j])))
                mix = 0.5 * (probs[i] + probs[j])
                log_mix = np.log(np.maximum(mix, 1e-300))
                js_ij = 0.5 * np.sum(probs[i] * (logp[i] - log_mix), -1)
                js_ij = js_ij + 0.5 * np.sum(probs[j] * (logp[j] - log_mix), -1)
                js.append(float(np.mean(js_ij)))
    ens = np.mean(probs, axis=0)
    member = float(np.mean([np.mean(p == labels) for p in preds]))
    ens_acc = float(np.mean(ens.argmax(-1) == labels))
    return {
        "disagreement": float(np.mean(dis)),
        "kl": float(np.mean(kl)),
        "js": float(np.mean(js)),
        "ensemble_accuracy": ens_acc,
        "member_accuracy": member,
        "ensemble_gain": ens_acc - member,
    }
