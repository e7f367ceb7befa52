"""SKA signal-quality (QA) pipeline model (pure numpy): mock visibilities with injected RFI, a robust
running median/MAD flagger, and the QA metrics. The Flink job calls these functions; tests check them
against independent pandas computations.

One record = one baseline at one time slot: CHANNELS × POLS complex visibilities."""
from __future__ import annotations

import numpy as np

CHANNELS, POLS = 32, 2
NOISE = 1.0
RFI_GAIN = 25.0          # RFI amplitude relative to the noise
FLAG_WINDOW = 16         # time slots of history per baseline for the median/MAD
FLAG_K = 6.0             # flag when |amp − median| > K · 1.4826 · MAD
HIST_EDGES = np.array([0, 0.5, 1, 1.5, 2, 3, 5, 10, 20, 50, np.inf])
CLIP = 50.0              # amplitudes above this count as clipped


def source_signal(baseline: int) -> float:
    return 2.0 + (baseline % 7) * 0.5


def rfi_mask(baseline: int, t: int, seed: int) -> np.ndarray:
    """Ground truth: which (channel, pol) samples carry RFI. Bursts of 3–8 slots every ~40 slots on a band of
    2–6 channels (both pols), placed by a hash of (seed, baseline, burst index)."""
    mask = np.zeros((CHANNELS, POLS), dtype=bool)
    period = 40
    burst = t // period
    rnd = np.random.default_rng([seed, baseline, burst, 1])
    start, length = int(rnd.integers(0, period - 8)), int(rnd.integers(3, 9))
    if t < FLAG_WINDOW or not start <= t % period < start + length:
        return mask  # no RFI before the flagger has history
    c0, width = int(rnd.integers(0, CHANNELS - 6)), int(rnd.integers(2, 7))
    mask[c0:c0 + width, :] = True
    return mask


def visibilities(baseline: int, t: int, seed: int) -> np.ndarray:
    """Complex (CHANNELS, POLS): a point source's constant amplitude with a per-baseline phase slope,
    Gaussian noise, and RFI where rfi_mask says so."""
    rnd = np.random.default_rng([seed, baseline, t, 0])
    phase = 0.05 * baseline * np.arange(CHANNELS)[:, None] + 0.01 * t
    v = source_signal(baseline) * np.exp(1j * phase) * np.ones((1, POLS))
    v = v + (rnd.normal(0, NOISE, (CHANNELS, POLS)) + 1j * rnd.normal(0, NOISE, (CHANNELS, POLS))) / np.sqrt(2)
    m = rfi_mask(baseline, t, seed)
    v[m] += RFI_GAIN * NOISE * np.exp(1j * rnd.uniform(0, 2 * np.pi, m.sum()))
    return v.astype(np.complex64)


def record(seq: int, seed: int, baselines: int, site_index: int) -> tuple:
    """Source record for sequence number `seq`: (baseline, t, re[], im[]) — flat float lists."""
    baseline = site_index * 1000 + seq % baselines
    t = seq // baselines
    v = visibilities(baseline, t, seed)
    return baseline, t, v.real.ravel().tolist(), v.imag.ravel().tolist()


def flag(history: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """history: (n ≤ FLAG_WINDOW, CHANNELS, POLS) earlier amplitudes, NaN where they were flagged."""
    if len(history) < 8:
        return np.zeros(amp.shape, dtype=bool)
    with np.errstate(all="ignore"):
        med = np.nanmedian(history, axis=0)
        mad = np.nanmedian(np.abs(history - med), axis=0)
    bad = np.abs(amp - med) > FLAG_K * 1.4826 * np.maximum(mad, 1e-6)
    return np.where(np.isnan(med), False, bad)


def remember(history: np.ndarray, amp: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Append this slot (flagged samples as NaN, so RFI never enters the statistics); keep FLAG_WINDOW."""
    return np.concatenate([history, np.where(flags, np.nan, amp)[None].astype(np.float32)])[-FLAG_WINDOW:]


def window_metrics(amps: np.ndarray, phases: np.ndarray, flags: np.ndarray) -> dict:
    """QA metrics of one baseline over a window of slots. amps/phases/flags: (slots, CHANNELS, POLS)."""
    good = ~flags
    a_good = amps[good]
    return {
        "amp_mean": float(amps.mean()), "amp_var": float(amps.var()),
        "phase_mean": float(phases.mean()), "phase_var": float(phases.var()),
        "amp_mean_excised": float(a_good.mean()) if a_good.size else float("nan"),
        "amp_var_excised": float(a_good.var()) if a_good.size else float("nan"),
        "phase_mean_excised": float(phases[good].mean()) if a_good.size else float("nan"),
        "phase_var_excised": float(phases[good].var()) if a_good.size else float("nan"),
        "rfi_fraction_per_channel": flags.mean(axis=(0, 2)).round(6).tolist(),
        "histogram": np.histogram(amps, bins=HIST_EDGES)[0].tolist(),
        "clipped": int((amps > CLIP).sum()),
    }


def run_length(prev: int, flags_now: np.ndarray) -> int:
    """Current RFI run length of a baseline: consecutive slots with any flagged sample."""
    return prev + 1 if flags_now.any() else 0
