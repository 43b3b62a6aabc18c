"""How close a converted model stays to the float Keras model, on the same inputs."""

from __future__ import annotations

import math

import numpy as np

from tfmobile_core.records import Fidelity


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Both (N, classes) logits. Top-1 agreement and top-5 overlap (fractions), SQNR in dB
    (signal power over error power, all logits pooled), mean cosine similarity."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    k = min(5, reference.shape[1])
    top_ref = np.argsort(-reference, axis=1)[:, :k]
    top_cand = np.argsort(-candidate, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand, strict=True)])
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


def range_use(reference: np.ndarray, calibrated: bytes) -> dict:
    """Where the held-out float logits fall in the int8 range calibration gave the model's output.

    `logits_rms_in_int8_steps`: their RMS in steps of that range. Below a few steps the int8
    logits are a handful of levels: the calibration images drove the network much harder than
    the held-out ones, and rounding swamps them (an untrained MobileNet V3's per-image logit
    RMS differs 5-240x between the 10th and 90th percentile image; fd_mobilenet's 4-5x).
    `logits_peak_over_calibrated_range`: above 1 they were clipped. Empty when the output
    carries no calibrated range.
    """
    from converters import litert

    graph = litert.read_model(calibrated).subgraphs[0]
    quant = graph.tensors[graph.outputs[0]].quantization
    if quant is None or quant.min is None or len(quant.min) != 1:
        return {}
    lo, hi = float(quant.min[0]), float(quant.max[0])
    if not hi > lo:
        return {}
    reference = np.asarray(reference, np.float64)
    peak = max(reference.max() / hi if hi > 0 else 0.0, reference.min() / lo if lo < 0 else 0.0)
    rms = float(np.sqrt(np.mean(reference**2)))
    return {"logits_rms_in_int8_steps": round(rms / ((hi - lo) / 255), 2),
            "logits_peak_over_calibrated_range": round(float(peak), 2)}


def measure(reference: np.ndarray, candidate: np.ndarray, held_out: dict) -> Fidelity:
    """`compare` as the report's record; identical outputs have no finite SQNR (None)."""
    found = compare(reference, candidate)
    k = next(int(key[3:-8]) for key in found if key.endswith("_overlap"))
    return Fidelity(samples=found["samples"], top1_agreement=found["top1_agreement"],
                    topk_overlap=found[f"top{k}_overlap"], k=k,
                    sqnr_db=found["sqnr_db"] if math.isfinite(found["sqnr_db"]) else None,
                    cosine=found["cosine"], max_abs_error=found["max_abs_error"],
                    held_out=held_out)
