"""Lip-sync skew at a viewer: the avatar's mouth (picture) vs its voice (sound).

From the recorded stack session (bench/e2e.py), for every answer the avatar speaks:

- sound: the loudness of each 10 ms of the avatar's audio at the viewer, mapped to a
  mouth opening exactly as the avatar does it (broadcaster/avatar/speech.py: -48 dBFS
  closed .. -14 dBFS open, closing at most 0.2 per 10 ms);
- picture: the opening of the mouth in each decoded frame: the share of dark pixels
  in the renderer's ``mouth_box``, mapped back to an opening with the renderer itself
  (calibrated here on undistorted frames).

Both are put on a 5 ms grid (receive wall-clock times) and cross-correlated; the lag
of the peak is the skew. Positive = sound ahead of picture. Per-turn onset differences
(first open mouth − first loud sound) are reported too. Baseline: the same answers at
a viewer of the avatar's own source room. Target (ITU-R BT.1359 detectability): within
+45 ms (sound first) / −125 ms (sound late).

Run: ``.venv/bin/python -m bench lipsync [--quick]``.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import e2e  # noqa: E402
from bench.figures import RESULTS, machine, now_iso, pyplot, summary, write_result  # noqa: E402
from bench.receiver import Receiver  # noqa: E402

NAME = "lipsync"
TARGET_LEAD_MS = 45.0   # sound ahead of picture
TARGET_LAG_MS = -125.0  # sound behind picture
GRID_MS = 5
MAX_LAG_MS = 300


@lru_cache(maxsize=1)
def mouth_table() -> tuple[np.ndarray, np.ndarray]:
    """(dark-pixel share, opening) of the renderer's mouth levels, on undistorted frames."""
    from livekit import rtc

    from bench.receiver import mouth_openness
    from broadcaster.avatar.renderer import MOUTH_LEVELS, FaceRenderer

    r = FaceRenderer(1280, 720, seed=0)
    box = r.mouth_box()
    share, level = [], []
    for i in range(MOUTH_LEVELS + 1):
        m = i / MOUTH_LEVELS
        buf = r.render(1.0, m, "speaking")
        frame = rtc.VideoFrame(1280, 720, rtc.VideoBufferType.I420, bytearray(buf.data))
        share.append(mouth_openness(frame, box))
        level.append(m)
    s, lv = np.maximum.accumulate(np.array(share)), np.array(level)
    return s, lv


def mouth_level(share: np.ndarray) -> np.ndarray:
    s, lv = mouth_table()
    keep = np.concatenate([[True], np.diff(s) > 0])
    return np.interp(share, s[keep], lv[keep])


def audio_level(rms: np.ndarray) -> np.ndarray:
    """The avatar's own loudness -> opening mapping, with its closing rate limit."""
    from broadcaster.avatar.speech import LOUD_DB, RELEASE_PER_BLOCK, SILENT_DB

    db = 20 * np.log10(np.maximum(rms, 1e-3) / 32768.0)
    raw = np.clip((db - SILENT_DB) / (LOUD_DB - SILENT_DB), 0, 1)
    out = np.empty_like(raw)
    last = 0.0
    for i, v in enumerate(raw):
        last = max(v, last - RELEASE_PER_BLOCK)
        if last < 0.02:
            last = 0.0
        out[i] = last
    return out


def signals(rx: Receiver, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grid µs, sound opening, picture opening) between t0 and t1, step-held."""
    grid = np.arange(t0, t1, GRID_MS * 1000)
    a = [x for x in rx.audio if t0 - 100_000 <= x.recv_us <= t1]
    v = [f for f in rx.video if t0 - 200_000 <= f.recv_us <= t1 and not np.isnan(f.mouth)]
    if len(a) < 10 or len(v) < 5:
        return grid, np.zeros(0), np.zeros(0)
    at = np.array([x.recv_us for x in a])
    al = audio_level(np.array([x.rms for x in a]))
    vt = np.array([f.recv_us for f in v])
    vl = mouth_level(np.array([f.mouth for f in v]))
    ia = np.clip(np.searchsorted(at, grid, side="right") - 1, 0, len(at) - 1)
    iv = np.clip(np.searchsorted(vt, grid, side="right") - 1, 0, len(vt) - 1)
    return grid, al[ia], vl[iv]


def xcorr(sound: list[np.ndarray], picture: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of sound(t) with picture(t + lag), pooled over windows."""
    lags = np.arange(-MAX_LAG_MS, MAX_LAG_MS + 1, GRID_MS)
    out = []
    k = MAX_LAG_MS // GRID_MS
    for lag in lags:
        j = lag // GRID_MS
        xs, ys = [], []
        for s, p in zip(sound, picture, strict=True):
            if len(s) <= 2 * k + 1:
                continue
            xs.append(s[k : len(s) - k])
            ys.append(p[k + j : len(p) - k + j])
        if not xs:
            return lags, np.zeros(0)
        x, y = np.concatenate(xs), np.concatenate(ys)
        out.append(float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0)
    return lags, np.array(out)


def peak(lags: np.ndarray, corr: np.ndarray) -> float | None:
    if corr.size == 0:
        return None
    i = int(np.argmax(corr))
    if 0 < i < len(corr) - 1:  # parabolic refinement
        a, b, c = corr[i - 1], corr[i], corr[i + 1]
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den else 0.0
        return float(lags[i] + off * GRID_MS)
    return float(lags[i])


def windows(run: e2e.StackRun, rx: Receiver) -> list[tuple[int, int]]:
    out = []
    for t in run.turns:
        until = t.answer_end_us or t.speech_end_us + 15_000_000
        onset = e2e.audio_onset(rx, t.speech_end_us, until)
        if onset is not None:
            out.append((onset - 400_000, until))
    return out


def measure(run: e2e.StackRun, rx: Receiver) -> dict[str, Any]:
    sound, picture, per_turn = [], [], []
    wins = windows(run, rx)
    for t0, t1 in wins:
        _, s, p = signals(rx, t0, t1)
        if s.size == 0:
            continue
        sound.append(s)
        picture.append(p)
        lags, c = xcorr([s], [p])
        per_turn.append(peak(lags, c))
    lags, corr = xcorr(sound, picture)
    onsets = []
    for t in run.turns:
        until = t.answer_end_us or t.speech_end_us + 15_000_000
        a = e2e.audio_onset(rx, t.speech_end_us, until)
        m = e2e.mouth_onset(rx, t.speech_end_us, until)
        if a is not None and m is not None:
            onsets.append((m - a) / 1e3)
    skew = peak(lags, corr)
    return {
        "skew_ms": skew,
        "peak_corr": float(corr.max()) if corr.size else None,
        "per_turn_skew_ms": per_turn,
        "onset_skew_ms": summary(onsets),
        "seconds_analysed": sum(len(s) for s in sound) * GRID_MS / 1e3,
        "_curve": (lags.tolist(), corr.tolist()),
    }


def analyse(run: e2e.StackRun) -> dict[str, Any]:
    stage = measure(run, run.stage)
    direct = measure(run, run.direct)
    skew = stage["skew_ms"]
    return {
        "stage": stage,
        "direct_baseline": direct,
        "skew_ms": skew,
        "added_by_republish_ms": None if skew is None or direct["skew_ms"] is None
        else skew - direct["skew_ms"],
        # the republisher's own view at the end of the session: audio entry -> handed to
        # LiveKit plus LiveKit's queue (sound later than picture by about this much)
        "bot_last_audio_lag_ms": _ms(run.bot_metrics.get(
            "broadcaster_republisher_last_audio_lag_seconds")),
        "bot_audio_frames_dropped": run.bot_metrics.get(
            "broadcaster_republisher_audio_frames_dropped_total"),
        "pass": skew is not None and TARGET_LAG_MS <= skew <= TARGET_LEAD_MS,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def plot(result: dict[str, Any], run: e2e.StackRun, path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    ax1.axvspan(TARGET_LAG_MS, TARGET_LEAD_MS, color="tab:green", alpha=0.12,
                label="target −125 … +45 ms")
    for key, label in (("direct_baseline", "direct (avatar room)"), ("stage", "stage viewer")):
        lags, corr = result[key].pop("_curve")
        if corr:
            ax1.plot(lags, corr, label=f"{label}: {result[key]['skew_ms']:+.0f} ms")
    ax1.axvline(0, color="0.5", lw=0.8)
    ax1.set_xlabel("lag (ms); > 0: sound ahead of picture")
    ax1.set_ylabel("correlation: sound opening vs mouth opening")
    ax1.set_title("Lip sync at the viewer")
    ax1.legend(fontsize=8)
    wins = windows(run, run.stage)
    if wins:
        t0, t1 = wins[len(wins) // 2]
        t1 = min(t1, t0 + 3_000_000)
        grid, s, p = signals(run.stage, t0, t1)
        if s.size:
            x = (grid - grid[0]) / 1e6
            ax2.plot(x, s, lw=1, label="sound → opening")
            ax2.step(x, p, where="post", lw=1, label="mouth in picture")
            ax2.set_xlabel("seconds (stage viewer, one answer)")
            ax2.set_ylabel("opening 0..1")
            ax2.set_title("Sound and picture, as received")
            ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(quick: bool = False) -> dict[str, Any]:
    session = e2e.session(quick)
    res = analyse(session)
    result = {
        "bench": NAME,
        "what": "cross-correlation lag of the avatar's mouth opening (pixels) vs its audio "
                "loudness at a stage viewer; positive = sound ahead; baseline: viewer of "
                "the avatar's source room",
        "quick": quick,
        "targets": {"lead_ms": TARGET_LEAD_MS, "lag_ms": TARGET_LAG_MS},
        **res,
        "machine": machine(),
        "when": now_iso(),
    }
    plot(result, session, RESULTS / f"{NAME}.png")
    for key in ("stage", "direct_baseline"):
        result[key].pop("_curve", None)
    write_result(NAME, result)
    return result


if __name__ == "__main__":
    e2e.main(run, __doc__, ("skew_ms", "added_by_republish_ms", "pass"))
