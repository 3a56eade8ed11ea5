"""What a viewer page in Chromium shows and plays, read from the page itself.

``RECORD_PEERS`` (an init script) keeps every ``RTCPeerConnection`` the page makes, so
``media`` can read WebRTC's own receive statistics (codec, frames decoded, frame size,
audio samples) beside what the ``<video>`` element presents
(``requestVideoFrameCallback``). ``playing`` turns two readings into rates;
``watch_until_back`` follows a page through a node loss until its picture moves again.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

#: before the page's scripts run: remember each peer connection (the page is unchanged)
RECORD_PEERS = """(() => {
  const Base = window.RTCPeerConnection;
  const peers = window.__peers = [];
  window.RTCPeerConnection = class extends Base {
    constructor(...args) { super(...args); peers.push(this); }
  };
})();"""

#: one reading: the <video>'s presented frames and size, the inbound RTP of open peers
MEDIA_JS = """async () => {
  const v = document.querySelector('#stage-video');
  if (v && window.__framesOf !== v) {  // count what the element presents (a new one: anew)
    window.__framesOf = v;
    window.__presented = {frames: 0, width: 0, height: 0};
    const seen = (now, meta) => {
      Object.assign(window.__presented, {frames: meta.presentedFrames, width: meta.width,
                                         height: meta.height});
      v.requestVideoFrameCallback(seen);
    };
    v.requestVideoFrameCallback(seen);
  }
  const out = {t: performance.now() / 1000, presented: {...(window.__presented || {})},
               video_width: v?.videoWidth ?? 0, video_height: v?.videoHeight ?? 0,
               paused: v ? v.paused : true, muted: v ? v.muted : true,
               audio_tracks: v?.srcObject?.getAudioTracks?.()
                 .filter(t => t.readyState === 'live').length ?? 0,
               audio_state: document.querySelector('#stage')?.dataset.audio || '',
               video: null, audio: null};
  for (const pc of window.__peers || []) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    const codecs = {};
    stats.forEach(s => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
    stats.forEach(s => {
      if (s.type !== 'inbound-rtp') return;
      const row = {codec: codecs[s.codecId] || '', frames: s.framesDecoded || 0,
                   width: s.frameWidth || 0, height: s.frameHeight || 0,
                   samples: s.totalSamplesReceived || 0, concealed: s.concealedSamples || 0,
                   energy: s.totalAudioEnergy || 0, packets: s.packetsReceived || 0,
                   lost: s.packetsLost || 0, keyframes: s.keyFramesDecoded || 0,
                   received: s.framesReceived || 0, dropped: s.framesDropped || 0,
                   pli: s.pliCount || 0, fir: s.firCount || 0, nack: s.nackCount || 0,
                   decoder: s.decoderImplementation || ''};
      const kind = s.kind || s.mediaType;
      const best = out[kind];
      if (!best || row.frames + row.samples > best.frames + best.samples) out[kind] = row;
    });
  }
  return out;
}"""

#: what the viewer sees, for following it through a loss
STATE_JS = """() => {
  const v = document.querySelector('#stage-video');
  const b = document.querySelector('.reconnect-banner');
  return {
    conn: document.querySelector('#conn-state')?.textContent || '',
    banner: b && !b.hidden ? b.textContent : '',
    avatar: document.querySelector('#stage')?.dataset.avatar || '',
    message: document.querySelector('#stage-message')?.textContent || '',
    frames: v?.getVideoPlaybackQuality?.().totalVideoFrames ?? -1,
    width: v?.videoWidth ?? 0,
    same_page: window.__beforeTheKill === true,
  };
}"""


async def media(page: Any) -> dict[str, Any]:
    """One reading of MEDIA_JS (the page needs RECORD_PEERS for its WebRTC figures)."""
    return await page.evaluate(MEDIA_JS)


async def playing(page: Any, seconds: float) -> dict[str, Any]:
    """What the page played over ``seconds``: presented and decoded frames a second, the
    size shown, the codec, audio samples a second and the share of them concealed."""
    await media(page)  # arms the element's frame counter
    await asyncio.sleep(0.2)
    a = await media(page)
    await asyncio.sleep(seconds)
    b = await media(page)
    dt = b["t"] - a["t"]
    video, audio = b["video"] or {}, b["audio"] or {}
    v0, a0 = a["video"] or {}, a["audio"] or {}
    samples = audio.get("samples", 0) - a0.get("samples", 0)
    return {
        "presented_fps": (b["presented"].get("frames", 0)
                          - a["presented"].get("frames", 0)) / dt,
        "decoded_fps": (video.get("frames", 0) - v0.get("frames", 0)) / dt,
        "size": (b["video_width"], b["video_height"]),
        "decoded_size": (video.get("width", 0), video.get("height", 0)),
        "codec": video.get("codec", ""),
        "audio_codec": audio.get("codec", ""),
        "audio_samples_per_s": samples / dt,
        "concealed_share": ((audio.get("concealed", 0) - a0.get("concealed", 0)) / samples
                            if samples > 0 else 1.0),
        "audio_energy": audio.get("energy", 0) - a0.get("energy", 0),
        "audio_tracks": b["audio_tracks"], "paused": b["paused"], "muted": b["muted"],
        "audio_state": b["audio_state"],
    }


async def watch_until_back(page: Any, killed: float, limit: float
                           ) -> tuple[float | None, list[tuple[float, dict]]]:
    """Read STATE_JS every 100 ms after a node loss at ``killed`` (monotonic) until the
    page is live again with its picture moving (> 5 frames over the last second, after
    it had stopped being live), or ``limit`` s; return when (s after the kill) and all
    it read."""
    seen: list[tuple[float, dict]] = []
    while time.monotonic() - killed < limit:
        state = await page.evaluate(STATE_JS)
        t = time.monotonic() - killed
        seen.append((t, state))
        ago = [x for tt, x in seen if t - 1.2 <= tt <= t - 0.8]
        if (state["avatar"] == "live" and ago and ago[0]["frames"] >= 0
                and state["frames"] > ago[0]["frames"] + 5
                and any(x["avatar"] != "live" for _, x in seen)):
            return t, seen
        await asyncio.sleep(0.1)
    return None, seen


def changes(seen: list[tuple[float, dict]]) -> list[tuple[float, dict]]:
    """The readings where anything but the frame count changed (for a failure message)."""
    return [(round(t, 1), x) for i, (t, x) in enumerate(seen)
            if i == 0 or {k: v for k, v in x.items() if k != "frames"}
            != {k: v for k, v in seen[i - 1][1].items() if k != "frames"}]


#: before a fault: note when the page presents each frame of ``#stage-video`` (a new
#: element, after a rejoin, is followed too); ``window.__frameAt`` holds Date.now() values
FRAME_TIMES_JS = """() => {
  window.__beforeTheKill = true;
  window.__frameAt = [];
  const follow = () => {
    const v = document.querySelector('#stage-video');
    if (v && v !== window.__frameOf) {
      window.__frameOf = v;
      const seen = () => {
        window.__frameAt.push(Date.now());
        if (window.__frameOf === v) v.requestVideoFrameCallback(seen);
      };
      v.requestVideoFrameCallback(seen);
    }
  };
  follow();
  setInterval(follow, 100);
}"""


async def longest_no_frame(page: Any, since_ms: float) -> float:
    """The longest time (s) with no frame presented in the page from ``since_ms``
    (Date.now() in the page's clock = the test's wall clock) to the last frame seen."""
    times = [t for t in await page.evaluate("window.__frameAt") if t >= since_ms - 1000]
    edges = [since_ms, *[t for t in times if t >= since_ms]]
    return max((b - a for a, b in zip(edges, edges[1:], strict=False)), default=0.0) / 1000
