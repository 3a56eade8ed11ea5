"""Local LiveAvatar-compatible avatar service: API, control socket, renderer, publisher.

The UNMODIFIED pipecat ``HeyGenVideoService(service_type=ServiceType.LIVE_AVATAR)``
drives it exactly as it drives HeyGen's LiveAvatar (see docs/avatar.md).

Modules, one job each:

* ``app``       -- the aiohttp app and ``serve(settings)``; ``python -m broadcaster.avatar``
* ``api``       -- HTTP: ``/v1/sessions/token|start|stop``, ``GET /v1/sessions``, ``/healthz``
* ``schema``    -- validation of the session request body (422 reasons)
* ``sessions``  -- session registry, LiveKit room and tokens, start/stop, the reaper
* ``control``   -- the control WebSocket at ``ws_url`` (commands in, JSON events out)
* ``runtime``   -- speaking / listening / idle state and LiveAvatar's events
* ``speech``    -- 24 -> 48 kHz speech playout buffer and the mouth envelope
* ``publisher`` -- the ``heygen`` LiveKit participant: one video layer + 48 kHz audio
* ``ticker``    -- the steady frame clock (no drift, no burst)
* ``renderer``  -- the cartoon presenter, drawn straight to I420
"""
