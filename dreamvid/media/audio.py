"""Audio features per video frame, for keyframe expressions (``zoom: "1.01 + 0.04*bass"``).

``features(path, fps, frames)`` decodes the audio once and returns, for each video frame, six
values in 0..1 (the audio variables of :mod:`dreamvid.schedule.expressions`):

* ``rms``: loudness (root mean square of the samples);
* ``bass``, ``mid``, ``treble``: the amplitude in a frequency band (default 20-250 Hz: kick
  drum, bass line; 250-2000 Hz: voice, snare, most instruments; 2000-8000 Hz: hi-hats,
  cymbals);
* ``onset``: how suddenly the sound grows (spectral flux: the rise of log-compressed
  magnitudes in 40 log-spaced bands from one analysis window to the next, falls ignored),
  high on drum hits and note starts, near 0 on steady sound;
* ``beat``: 1 on a detected beat, falling as ``(1 - dt/width)**2`` to 0 within ``beat_decay``
  seconds, and always before the next beat. Beats are the peaks of the onset of the
  ``beat_band`` bands only (20-500 Hz: kick drum, snare body, bass notes; hi-hats do not make
  beats) that stand ``beat_threshold`` (normalised) above the running median of that onset
  over 1 s (steady noise or a held chord makes none), at least ``beat_min_gap`` apart (a
  weaker peak closer than that to a stronger one is dropped). No tempo grid is fitted: an
  off-grid hit is a beat too.

The sound itself comes from ffmpeg: :func:`decode` (samples), :func:`probe_audio` (run before a
render, so that a soundtrack ffmpeg cannot decode fails in seconds, not at the final join).

How (defaults in :class:`AudioSettings` and the constants below, the one place they are set):

1. ffmpeg (the bundled binary) decodes the first audio stream, downmixed to mono at 22 050 Hz
   float32, through a pipe (no temp file), up to the end of the video plus ``TAIL_S``.
2. Hann windows of 1024 samples (46 ms, 21.5 Hz per bin) every 256 samples (11.6 ms),
   centred on their time; band powers are calibrated (Parseval) so that ``rms`` is the RMS
   of the samples and a band's amplitude is the RMS of that band's part of the sound.
3. ``rms`` and the bands follow the sound with a one-pole attack/release: a hit reads as a
   fast rise and a smooth fall, not a flicker.
4. Normalisation: each feature is divided by its ``percentile`` (99th) over the analysed
   audio and clipped to 1. A high percentile, not the maximum, so one stray spike does not
   squash everything else; never a gain above ``max_gain`` times "divide by the maximum",
   so a feature with a few events (where the percentile lands in the noise) does not raise
   its noise to 1; and never below an absolute floor: a band more than ``BAND_FLOOR_DB``
   below the track's level (a track of hi-hats has almost no bass: ``bass`` stays near 0),
   audio under ``SILENCE_DB`` dBFS (0 everywhere), onsets weaker than ``ONSET_FLOOR``.
   Normalising per track makes a quiet recording react like a loud one.
5. Frame ``n`` is at ``n/fps`` and takes the largest analysis value within half a frame on
   either side (centred: a hit lands on the frame nearest to it, and no hit falls between
   two frames at a low frame rate); a beat marks the frame nearest to it. Frames after the
   end of the audio are 0 (audio shorter than the video pads with silence).

Measured on synthetic kicks and snares: ``onset`` peaks 2-14 ms before the hit, the
``rms``/band envelope 5-10 ms after it (attack 0): within one frame up to 30 fps or so.

Same file and settings give the same arrays, bit for bit (numpy/scipy, no threads, no
randomness). numpy + scipy rather than librosa: librosa pulls numba and llvmlite (a JIT
compiler, ~100 MB, tied to numpy versions) for what is ~100 lines of array code here;
scipy (already required by scikit-image) does the peak picking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from dreamvid.core.errors import DreamvidError, InputError
from dreamvid.core.problems import finite_float, show
from dreamvid.media import ffmpeg

__all__ = ["ENVELOPED", "FEATURES", "SAMPLE_RATE", "AudioSettings", "analyse", "beat_times", "decode", "envelope",
           "features", "probe_audio"]

FEATURES = ("rms", "bass", "mid", "treble", "onset", "beat")
ENVELOPED = ("rms", "bass", "mid", "treble", "onset")  # what a schedule's `attack`/`release` shape per frame
SAMPLE_RATE = 22_050  # Hz: bands up to 11 kHz, half the work of 44.1 kHz
N_FFT = 1024  # samples per window at SAMPLE_RATE: 46 ms, 21.5 Hz bins (20-250 Hz spans 11 bins)
HOP = 256  # samples between windows at SAMPLE_RATE: 11.6 ms, a third of a video frame at 30 fps
FLUX_BANDS = 40  # log-spaced bands, 30 Hz to 11 kHz, for the onsets (bands narrower than a bin dropped)
FLUX_KNEE = 100.0  # flux on log10(1 + 100 * band amplitude / track level): log above -40 dB, ~linear below
ONSET_FLOOR = 0.1  # onset divisor floor, in flux units (mean log10 rise per band; a kick from silence ~0.3)
BEAT_FLOOR = 0.25  # beat-onset divisor floor (a kick from silence ~0.6 in the 20-500 Hz bands)
BEAT_MEDIAN_S = 1.0  # a beat must stand out above the beat onset's running median over 1 s
BAND_FLOOR_DB = -24.0  # a band's divisor is at least the track's level minus 24 dB
SILENCE_DB = -60.0  # a track whose level (rms percentile) is below -60 dBFS is silence: all 0
TAIL_S = 1.0  # audio decoded past the video's end, so the last frames see whole windows


@dataclass(frozen=True)
class AudioSettings:
    """How audio becomes features (the schedule's ``audio_features:``); every default here."""

    bass: tuple[float, float] = (20.0, 250.0)  # Hz: kick drum, bass line
    mid: tuple[float, float] = (250.0, 2000.0)  # Hz: voice, snare body, most instruments
    treble: tuple[float, float] = (2000.0, 8000.0)  # Hz: hi-hats, cymbals, sibilants
    attack: float = 0.0  # s: rise time constant of rms/bass/mid/treble; 0: instant (the 46 ms
    #                      window already smooths the rise; 10 ms would add ~10 ms of lag)
    release: float = 0.1  # s: fall time constant (a kick's bass falls to ~0.1 in 0.5 s)
    percentile: float = 99.0  # divide each feature by this percentile of itself, clip to 1 ...
    max_gain: float = 4.0  # ... but amplify at most 4x more than dividing by the maximum would
    beat_band: tuple[float, float] = (20.0, 500.0)  # Hz: whose onsets make beats (kick, snare body)
    beat_threshold: float = 0.5  # a beat-onset peak must stand this far (normalised) above its running median
    beat_min_gap: float = 0.25  # s: beats at least this far apart (at most 240 per minute)
    beat_decay: float = 0.25  # s: a beat falls from 1 to 0 in this time (or by the next beat)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(problems[0])

    def problems(self) -> list[str]:
        """Each problem as ``<field>: <what>; expected <what>`` (empty when the settings are valid)."""
        out = []
        nyquist = SAMPLE_RATE / 2
        for name in ("bass", "mid", "treble", "beat_band"):
            band = getattr(self, name)
            ok = (isinstance(band, tuple) and len(band) == 2 and all(_is_number(v) for v in band)
                  and 0 <= band[0] < band[1] <= nyquist)
            if not ok:
                out.append(f"{name}: got {_show(band)}; expected [low, high] in Hz with 0 <= low < high <= {nyquist:g}")
        for name, lo, hi, what in (("attack", 0, 10, "seconds"), ("release", 0, 10, "seconds"),
                                   ("percentile", 50, 100, "a percentile"), ("max_gain", 1, 1000, "a factor"),
                                   ("beat_threshold", 0, 1, "a normalised onset"),
                                   ("beat_min_gap", 0.02, 10, "seconds"), ("beat_decay", 0.01, 10, "seconds")):
            value = getattr(self, name)
            if not _is_number(value) or not lo <= value <= hi:
                out.append(f"{name}: got {_show(value)}; expected {what} {lo:g}..{hi:g}")
        return out

    def to_data(self) -> dict:
        """Plain data (lists for the bands), e.g. for a schedule's fingerprint."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


def _is_number(value) -> bool:
    return finite_float(value) is not None


def _show(value) -> str:
    return "[" + ", ".join(map(show, value)) + "]" if isinstance(value, tuple) else show(value)


# --- decoding ---------------------------------------------------------------------------


def decode(path: str | Path, *, seconds: float | None = None, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio stream of ``path`` (any file ffmpeg reads, a video's sound too) as mono
    float32 samples at ``rate`` Hz, at most ``seconds`` long. One-line InputError naming the
    file if it is missing, not audio, has no audio stream or no samples."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "audio file not found"
        raise InputError(f"{path}: {what}; expected an audio file (WAV, MP3, AAC, FLAC ...)")
    limit = ["-t", f"{seconds:.6f}"] if seconds is not None else []
    try:  # ffmpeg.run: output through a pipe, ffmpeg killed if we are interrupted
        proc = ffmpeg.run(["-v", "error", "-i", str(path), "-map", "0:a:0", *limit, "-ac", "1", "-ar", str(rate),
                           "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"], f"reading audio {path}")
    except DreamvidError as err:
        raise _input_error(path, err) from None
    samples = np.frombuffer(proc.stdout, dtype="<f4")
    if samples.size == 0 and (seconds is None or seconds > 0):
        raise InputError(f"{path}: the audio stream has no samples; expected an audio file with sound")
    return samples.astype(np.float32)


def probe_audio(path: Path | str) -> None:
    """Decode the start of ``path``'s first audio stream; InputError if ffmpeg cannot.

    Run before rendering, so that a bad soundtrack fails in seconds, not at the final join
    (where :func:`dreamvid.media.write.join_videos` muxes it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: audio file not found; expected an audio file (WAV, MP3, AAC, FLAC ...)")
    try:
        ffmpeg.run(["-v", "error", "-i", str(path), "-map", "0:a:0", "-t", "1", "-f", "null", "-"],
                   f"reading audio {path}")
    except DreamvidError as err:
        raise _input_error(path, err) from None


def _input_error(path: Path, err: DreamvidError) -> DreamvidError:
    """ffmpeg's failure to read ``path``'s audio as a one-line InputError naming the file; ``err``
    itself when ffmpeg could not run at all (not the audio file's fault)."""
    if isinstance(err, InputError) or "ffmpeg failed" not in str(err):
        return err
    reason = str(err).split("): ", 1)[-1]
    if "matches no streams" in reason:
        reason = "it has no audio stream"
    return InputError(f"{path}: not a readable audio file ({reason}); expected an audio file ffmpeg can "
                      "decode (WAV, MP3, AAC, FLAC ...)")


def features(path: str | Path, fps: float, frames: int, settings: AudioSettings = AudioSettings()
             ) -> dict[str, np.ndarray]:
    """``{name: float64 array of length frames}`` for each of :data:`FEATURES`, each in 0..1.

    Frame ``n`` is at ``n/fps`` seconds. Only the audio the video covers (plus ``TAIL_S``) is
    decoded and analysed (and normalised over); audio shorter than the video gives 0 after its end.
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0 or not fps > 0:
        raise ValueError(f"need an integer frames >= 0 and fps > 0, got {frames!r}, {fps!r}")
    samples = decode(path, seconds=frames / fps + TAIL_S)
    return analyse(samples, SAMPLE_RATE, fps, frames, settings)


# --- analysis ---------------------------------------------------------------------------


def _spectra(x: np.ndarray, rate: int, bands: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window (window j centred on sample j*hop): the power in each of ``bands``, calibrated
    so that all bins together give the mean square of the samples; the same for the FLUX_BANDS
    log bands; and those log bands' centre frequencies."""
    n_fft, hop = _window(rate)
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    # Parseval for a windowed real frame: mean square = sum_k c_k |X_k|^2 / (N * sum(w^2)),
    # c_k = 1 at DC and Nyquist, 2 elsewhere (each other bin stands for two)
    weight = np.full(freqs.size, 2.0)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    weight /= n_fft * np.sum(window**2)
    pick = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in bands], axis=1)
    edges = np.geomspace(30.0, rate / 2, FLUX_BANDS + 1)
    which = np.searchsorted(edges, freqs, side="right") - 1
    used = np.unique(which[(which >= 0) & (which < FLUX_BANDS)])
    log_pick = which[:, None] == used[None, :]
    matrix = np.concatenate([pick, log_pick], axis=1) * weight[:, None]  # bins x bands

    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    count = 1 + (padded.size - n_fft) // hop
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    out = np.empty((count, matrix.shape[1]))
    for start in range(0, count, 2048):  # chunks: memory stays small for long tracks
        spec = np.fft.rfft(view[start:start + 2048] * window, axis=1)
        out[start:start + 2048] = (spec.real**2 + spec.imag**2) @ matrix
    centres = np.sqrt(edges[used] * edges[used + 1])
    return out[:, : len(bands)], out[:, len(bands):], centres


def _window(rate: int) -> tuple[int, int]:
    """(window, hop) in samples at ``rate``: the same durations as N_FFT and HOP at SAMPLE_RATE."""
    return round(N_FFT * rate / SAMPLE_RATE), round(HOP * rate / SAMPLE_RATE)


def envelope(x: np.ndarray, attack, release, step: float) -> np.ndarray:
    """One-pole envelope follower from 0: rises toward ``x`` with time constant ``attack`` (s),
    falls with ``release`` (s); each a number or one value per sample (0: at once). ``step``:
    seconds between samples."""
    n = len(x)
    ups = [math.exp(-step / a) if a > 0 else 0.0 for a in np.broadcast_to(attack, (n,)).tolist()]
    downs = [math.exp(-step / r) if r > 0 else 0.0 for r in np.broadcast_to(release, (n,)).tolist()]
    out, y = [], 0.0
    for v, up, down in zip(x.tolist(), ups, downs):  # sequential by nature; plain floats are the fastest way here
        a = up if v > y else down
        y = a * y + (1.0 - a) * v
        out.append(y)
    return np.array(out, dtype=np.float64)


def _normalise(x: np.ndarray, settings: AudioSettings, floor: float) -> np.ndarray:
    """x / max(percentile, max / max_gain, floor), clipped to 0..1."""
    if x.size == 0:
        return x
    scale = max(float(np.percentile(x, settings.percentile)), float(x.max()) / settings.max_gain, floor)
    return np.clip(x / scale, 0.0, 1.0)


def _flux(band_power: np.ndarray, level: float) -> np.ndarray:
    """Per window and band: the rise of log10(1 + FLUX_KNEE * amplitude / level) since the
    previous window, falls counted 0 (the first window rises from silence)."""
    y = np.log10(1.0 + FLUX_KNEE * np.sqrt(band_power) / level)
    return np.maximum(np.diff(y, axis=0, prepend=0.0), 0.0)


def _per_frame(x: np.ndarray, step: float, fps: float, frames: int) -> np.ndarray:
    """Largest value of ``x`` (sampled every ``step`` s from 0) within half a frame of each frame's
    time n/fps; interpolated where no sample falls inside (fps above 1/step); 0 past the end."""
    out = np.zeros(frames)
    if x.size == 0 or frames == 0:
        return out
    # frame n covers [(n - 0.5)/fps, (n + 0.5)/fps): shared edges, so each sample is in one frame
    edges = np.ceil((np.arange(frames + 1) - 0.5) / fps / step - 1e-9).astype(np.int64).clip(0, x.size)
    lo, hi = edges[:-1], edges[1:]
    inside = hi > lo
    if inside.any():  # maximum over each [lo, hi): reduceat on pairs of cuts, a sentinel closes the last
        cuts = np.stack([lo[inside], hi[inside]], axis=1).ravel()
        out[inside] = np.maximum.reduceat(np.append(x, 0.0), cuts)[::2]
    times = np.arange(frames) / fps
    empty = ~inside & (times <= (x.size - 1) * step)
    out[empty] = np.interp(times[empty], np.arange(x.size) * step, x)
    return out


def _beats(onset: np.ndarray, step: float, settings: AudioSettings) -> np.ndarray:
    """Times (s) of the peaks that stand beat_threshold above the onset's running median over
    BEAT_MEDIAN_S, at least beat_min_gap apart (the stronger kept)."""
    from scipy.ndimage import median_filter  # scipy takes ~0.5-2 s to import: only when needed
    from scipy.signal import find_peaks

    size = 2 * round(BEAT_MEDIAN_S / step / 2) + 1
    excess = onset - median_filter(onset, size=size, mode="constant")  # silence around the track
    distance = max(1, round(settings.beat_min_gap / step))
    peaks, _ = find_peaks(np.concatenate([[0.0], excess, [0.0]]), height=settings.beat_threshold,
                          distance=distance)
    return (peaks - 1) * step  # the zero ends let a peak in the first or last window count


def _beat_curve(beat_times: np.ndarray, fps: float, frames: int, decay: float) -> np.ndarray:
    """1 on each beat's nearest frame, then (1 - dt/width)**2 down to 0, width = min(decay, gap)."""
    out = np.zeros(frames)
    marks = np.unique(np.rint(beat_times * fps).astype(np.int64))
    marks = marks[(marks >= 0) & (marks < frames)]
    for i, b in enumerate(marks):
        end = int(marks[i + 1]) if i + 1 < len(marks) else frames
        width = min(decay, (end - b) / fps) if i + 1 < len(marks) else decay
        dt = (np.arange(b, end) - b) / fps
        out[b:end] = np.maximum(0.0, 1.0 - dt / width) ** 2
    return out


def _analysis(x: np.ndarray, rate: int, settings: AudioSettings) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """At the analysis rate (one value per window): normalised rms, bass, mid, treble and onset;
    and the beat times in seconds."""
    bands = [(0.0, math.inf), settings.bass, settings.mid, settings.treble]  # the first (every bin): rms
    power, flux_power, centres = _spectra(x, rate, bands)
    amplitude = np.sqrt(power)
    silence = 10.0 ** (SILENCE_DB / 20)
    level = float(np.percentile(amplitude[:, 0], settings.percentile))  # the track's level (RMS)
    if level < silence:  # silence, or digital near-silence: nothing moves
        return {name: np.zeros(len(power)) for name in FEATURES[:5]}, np.zeros(0)
    step = _window(rate)[1] / rate
    band_floor = level * 10.0 ** (BAND_FLOOR_DB / 20)
    out = {}
    for i, (name, floor) in enumerate((("rms", silence), ("bass", band_floor), ("mid", band_floor),
                                       ("treble", band_floor))):
        out[name] = _normalise(envelope(amplitude[:, i], settings.attack, settings.release, step), settings, floor)
    flux = _flux(flux_power, level)
    out["onset"] = _normalise(flux.mean(axis=1), settings, ONSET_FLOOR)
    in_band = (centres >= settings.beat_band[0]) & (centres < settings.beat_band[1])
    beat_onset = flux[:, in_band].mean(axis=1) if in_band.any() else np.zeros(len(flux))
    return out, _beats(_normalise(beat_onset, settings, BEAT_FLOOR), step, settings)


def analyse(samples: np.ndarray, rate: int, fps: float, frames: int,
            settings: AudioSettings = AudioSettings()) -> dict[str, np.ndarray]:
    """:func:`features` of mono ``samples`` at ``rate`` Hz (already decoded): numpy/scipy only."""
    per_window, beats = _analysis(np.asarray(samples, dtype=np.float64).ravel(), rate, settings)
    step = _window(rate)[1] / rate
    out = {name: _per_frame(values, step, fps, frames) for name, values in per_window.items()}
    out["beat"] = _beat_curve(beats, fps, frames, settings.beat_decay)
    return {name: out[name] for name in FEATURES}


def beat_times(samples: np.ndarray, rate: int, settings: AudioSettings = AudioSettings()) -> np.ndarray:
    """The detected beats' times in seconds (what ``beat`` marks), e.g. for a plot or a tempo."""
    return _analysis(np.asarray(samples, dtype=np.float64).ravel(), rate, settings)[1]
