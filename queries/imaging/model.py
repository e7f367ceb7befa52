"""Fast imaging (pure numpy): visibility time slices of a synthetic point-source sky, gridding onto a uv
grid and a 2-D FFT to a dirty image, and image statistics."""
from __future__ import annotations

import numpy as np

GRID = 128          # image is GRID × GRID pixels
CELL = 1.0 / GRID   # pixel size in direction cosines, so u, v in wavelengths span ±GRID/2
VIS_PER_SLICE = 512


def source_position(slice_id: int, seed: int) -> tuple[int, int]:
    """Pixel offsets (dx, dy) of the point source from the image centre for a slice."""
    rnd = np.random.default_rng([seed, slice_id, 7])
    return int(rnd.integers(-GRID // 4, GRID // 4)), int(rnd.integers(-GRID // 4, GRID // 4))


def slice_record(slice_id: int, seed: int) -> tuple:
    """(slice, u[], v[], re[], im[]): integer-wavelength uv samples of a unit point source plus noise."""
    rnd = np.random.default_rng([seed, slice_id, 0])
    u = rnd.integers(-GRID // 2 + 1, GRID // 2, VIS_PER_SLICE).astype(np.float32)
    v = rnd.integers(-GRID // 2 + 1, GRID // 2, VIS_PER_SLICE).astype(np.float32)
    dx, dy = source_position(slice_id, seed)
    l, m = dx * CELL, dy * CELL
    vis = np.exp(-2j * np.pi * (u * l + v * m)) + 0.1 * (rnd.normal(size=VIS_PER_SLICE) + 1j * rnd.normal(size=VIS_PER_SLICE))
    return slice_id, u.tolist(), v.tolist(), vis.real.astype(np.float32).tolist(), vis.imag.astype(np.float32).tolist()


def dirty_image(u, v, re, im) -> np.ndarray:
    """Nearest-cell gridding (with the Hermitian conjugate) and inverse FFT → real GRID × GRID image;
    pixel [y, x] with the centre at [GRID/2, GRID/2]."""
    grid = np.zeros((GRID, GRID), np.complex128)
    iu = (np.asarray(u, int)) % GRID
    iv = (np.asarray(v, int)) % GRID
    vis = np.asarray(re) + 1j * np.asarray(im)
    np.add.at(grid, (iv, iu), vis)
    np.add.at(grid, ((-np.asarray(v, int)) % GRID, (-np.asarray(u, int)) % GRID), np.conj(vis))
    img = np.fft.fftshift(np.fft.ifft2(grid)).real * GRID * GRID / (2 * len(vis))
    return img.astype(np.float32)


def image_stats(img: np.ndarray) -> dict:
    y, x = np.unravel_index(int(np.argmax(img)), img.shape)
    return {"peak": float(img[y, x]), "peak_x": int(x) - GRID // 2, "peak_y": int(y) - GRID // 2,
            "rms": float(np.sqrt(np.mean(img ** 2))), "mean": float(img.mean())}
