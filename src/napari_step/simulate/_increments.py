"""Gaussian increments shared by the simulators: fractional Gaussian noise, by segment or as a
stream that restarts when a particle changes state."""

from __future__ import annotations

import numpy as np


def fgn(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """Fractional Gaussian noise, unit variance, Hurst alpha/2 per track (Davies-Harte).

    The autocovariance is embedded in a circulant matrix of size 2 n_steps whose eigenvalues (an
    FFT) are non-negative for fractional Gaussian noise; one complex Gaussian vector then gives
    two independent exact samples (real and imaginary parts), i.e. two axes.
    """
    n = alpha.size
    out = np.empty((n, n_steps, dim))
    if n_steps == 0 or n == 0:
        return out
    h2 = alpha[:, None]  # 2H
    k = np.arange(n_steps + 1, dtype=float)[None, :]
    gamma = 0.5 * (np.abs(k + 1) ** h2 - 2 * k**h2 + np.abs(k - 1) ** h2)  # (n, n_steps + 1)
    row = np.concatenate([gamma, gamma[:, -2:0:-1]], axis=1)  # (n, M), M = 2 n_steps
    m = row.shape[1]
    lam = np.clip(np.fft.fft(row, axis=1).real, 0.0, None)
    amp = np.sqrt(lam / m)
    for axis in range(0, dim, 2):
        z = rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m))
        w = np.fft.fft(amp * z, axis=1)[:, :n_steps]
        out[:, :, axis] = w.real
        if axis + 1 < dim:
            out[:, :, axis + 1] = w.imag
    return out


def unit_vectors(shape: tuple, dim: int, rng) -> np.ndarray:
    """(shape + (dim,)) random unit vectors, uniform in direction (+-1 in 1-D)."""
    if dim == 1:
        return rng.choice([-1.0, 1.0], size=shape + (1,))
    v = rng.standard_normal(shape + (dim,))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def fgn_segments(alpha: np.ndarray, lengths: np.ndarray, dim: int, rng) -> np.ndarray:
    """Unit-variance fractional Gaussian noise of independent segments, concatenated.

    Segment s has ``lengths[s]`` increments with exponent ``alpha[s]`` (a fresh fBm: no memory
    across segments). Segments are simulated in buckets of power-of-two lengths; alpha == 1
    segments are plain white noise. Returns (sum(lengths), dim).
    """
    alpha = np.asarray(alpha, float)
    lengths = np.asarray(lengths, int)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    out = rng.standard_normal((int(lengths.sum()), dim))
    coloured = np.flatnonzero((alpha != 1.0) & (lengths > 1))
    bucket = np.ceil(np.log2(np.maximum(lengths[coloured], 1))).astype(int)
    for b in np.unique(bucket):
        sel = coloured[bucket == b]
        n = 2 ** int(b)
        inc = fgn(alpha[sel], n, dim, rng)
        k = np.arange(n)[None, :]
        valid = k < lengths[sel][:, None]
        out[(offsets[sel][:, None] + k)[valid]] = inc[valid]
    return out


class IncrementStream:
    """Unit increments for particles whose fBm restarts whenever their state changes.

    Parameters
    ----------
    n, n_steps, dim : int
        Particles, largest number of steps, spatial dimension.
    rng : numpy.random.Generator
        Random generator.
    """

    def __init__(self, n: int, n_steps: int, dim: int, rng) -> None:
        self.rng, self.n_steps, self.dim = rng, n_steps, dim
        self.buffer = rng.standard_normal((n, max(n_steps, 1), dim))
        self.pointer = np.zeros(n, dtype=int)

    def restart(self, rows: np.ndarray, alpha: np.ndarray, t: int) -> None:
        """A fresh fBm of exponent ``alpha`` (one per row) for ``rows`` from step ``t`` on.

        White-noise rows (alpha == 1) keep their stream: it has no memory to restart.
        """
        rows, alpha = np.asarray(rows, int), np.asarray(alpha, float)
        coloured = alpha != 1.0
        rows, alpha = rows[coloured], alpha[coloured]
        n_left = self.n_steps - t
        if rows.size == 0 or n_left <= 0:
            return
        self.buffer[rows, :n_left] = fgn(alpha, n_left, self.dim, self.rng)
        self.pointer[rows] = 0

    def next(self) -> np.ndarray:
        """(n, dim) the next unit increment of every particle."""
        out = self.buffer[np.arange(self.pointer.size), self.pointer]
        self.pointer += 1
        return out
