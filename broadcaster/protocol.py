"""Names shared across processes and the browser pages: one place, no drift.

Room metadata (JSON, set by the web app through RoomService):
    {"title": str, "speaker": identity | null, "state": "live" | "ended"}
The bot follows ``speaker`` live; pages show title and speaker.

Captions: the bot sends LiveKit text streams on CAPTION_TOPIC with attributes
    CAPTION_SPEAKER_ATTR = identity whose words they are (the avatar: AVATAR_CAPTION_SPEAKER)
    CAPTION_FINAL_ATTR   = "true" | "false"  (LiveKit's own transcription attribute)
    CAPTION_SEQ_ATTR     = the line's number within its ``lk.segment_id`` (1, 2, ...; the
                           final line has the highest). Text streams sent back to back can
                           complete out of order at a receiver (the Python SDK reads each
                           stream in its own task): a reader keeps, per segment, the line
                           with the highest number and ignores older ones.
"""

CAPTION_TOPIC = "lk.transcription"
CAPTION_FINAL_ATTR = "lk.transcription_final"
CAPTION_SPEAKER_ATTR = "broadcaster.speaker"
CAPTION_SEQ_ATTR = "broadcaster.seq"
AVATAR_CAPTION_SPEAKER = "avatar"

#: the LiveAvatar participant identity (pipecat's HeyGenTransport filters it)
AVATAR_IDENTITY = "heygen"

#: "ask the avatar": the web app (LiveKit's server API, so no participant sends it) sends
#: the bot a question the host or the speaker picked, as JSON {"id", "name", "text"}
ASK_TOPIC = "broadcaster.ask"

ROOM_STATE_LIVE = "live"
ROOM_STATE_ENDED = "ended"
