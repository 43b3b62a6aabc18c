"""How close a converted model stays to the float Keras model, on the same inputs."""

from __future__ import annotations

import numpy as np


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Both (N, classes) logits. Top-1 agreement and top-5 overlap (fractions), SQNR in dB
    (signal power over error power, all logits pooled), mean cosine similarity."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    k = min(5, reference.shape[1])
    top_ref = np.argsort(-reference, axis=1)[:, :k]
    top_cand = np.argsort(-candidate, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand)])
    error = np.sum((reference - candidate) ** 2)
    signal = np.sum(reference**2)
    sqnr = float("inf") if error == 0 else 10 * np.log10(signal / error)
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    cosine = np.sum(reference * candidate, axis=1) / np.where(norms == 0, 1, norms)
    return {
        "samples": int(reference.shape[0]),
        "top1_agreement": float(np.mean(top_ref[:, 0] == top_cand[:, 0])),
        f"top{k}_overlap": float(overlap),
        "sqnr_db": float(sqnr),
        "cosine": float(np.mean(cosine)),
        "max_abs_error": float(np.max(np.abs(reference - candidate))),
    }
