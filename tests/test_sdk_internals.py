"""The pipecat / LiveKit private names broadcaster relies on are still where it expects them.

Every entry of ``broadcaster.sdk_internals.PRIVATE_NAMES`` (and the subclass API) is
checked against the installed versions: a class member must still exist (and take the
parameters we pass), an instance attribute must still be assigned by the class's own
code. A failure names the attribute, the version and what broadcaster uses it for.
The hooks themselves are exercised on real pipecat objects (no network).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import textwrap

import aiohttp
import pytest
from pipecat.audio.resamplers.soxr_stream_resampler import SOXRStreamAudioResampler
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADState
from pipecat.services.heygen.client import HeyGenCallbacks, HeyGenClient, ServiceType
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.livekit.transport import LiveKitParams

from broadcaster import sdk_internals
from broadcaster.bot.avatar_service import FastHeyGenVideoService
from broadcaster.sdk_internals import PRIVATE_NAMES, SUBCLASS_API, PrivateName
from broadcaster.speech.vad import SpeakerVADProcessor


def owner_class(entry: PrivateName) -> type:
    module, _, name = entry.owner.rpartition(".")
    return getattr(importlib.import_module(module), name)


def assigned_on_self(cls: type) -> set[str]:
    """Attribute names the code of ``cls`` and its bases assigns as ``self.<name>``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for target in targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id == "self"):
                    names.add(target.attr)
    return names


def version_of(entry: PrivateName) -> str:
    dist = "pipecat-ai" if entry.owner.startswith("pipecat") else "livekit"
    return f"{dist} {importlib.metadata.version(dist)}"


@pytest.mark.parametrize("entry", PRIVATE_NAMES + SUBCLASS_API,
                         ids=lambda e: f"{e.owner.rsplit('.', 1)[1]}.{e.name}")
def test_private_name_is_still_there(entry: PrivateName) -> None:
    where = f"{entry.owner}.{entry.name}"
    used_for = f"broadcaster uses it for: {entry.why} (broadcaster/sdk_internals.py)"
    try:
        cls = owner_class(entry)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{entry.owner} is gone in {version_of(entry)} ({exc}); {used_for}")
    if entry.kind == "class":
        member = inspect.getattr_static(cls, entry.name, None)
        assert member is not None, f"{where} is gone in {version_of(entry)}; {used_for}"
        if entry.params:
            accepted = set(inspect.signature(getattr(cls, entry.name)).parameters)
            missing = [p for p in entry.params if p not in accepted]
            assert not missing, (f"{where} no longer takes {missing} in {version_of(entry)}; "
                                 f"{used_for}")
    else:
        assert entry.name in assigned_on_self(cls), (
            f"{where} is no longer assigned by {entry.owner} in {version_of(entry)}; {used_for}")


def test_the_check_notices_a_moved_name() -> None:
    moved = PrivateName("pipecat.services.heygen.client.HeyGenClient", "_gone", "instance", "x")
    assert moved.name not in assigned_on_self(owner_class(moved))
    assert inspect.getattr_static(owner_class(moved), "_not_a_method", None) is None


def test_transport_input_uses_the_resampler_we_choose() -> None:
    made: list[SOXRStreamAudioResampler] = []

    def make() -> SOXRStreamAudioResampler:
        made.append(SOXRStreamAudioResampler(quality="LQ"))
        return made[-1]

    transport = sdk_internals.LiveKitTransportWithResampler(
        "ws://127.0.0.1:1", "token", "room", params=LiveKitParams(audio_in_enabled=True),
        make_resampler=make)
    entry = transport.input()
    assert transport.input() is entry
    assert entry.make_resampler is make  # type: ignore[attr-defined]


async def test_vad_state_readers_and_reset_on_a_real_analyzer() -> None:
    analyzer = SileroVADAnalyzer()
    analyzer.set_sample_rate(16_000)
    processor = SpeakerVADProcessor(vad_analyzer=analyzer)
    assert sdk_internals.vad_suspected_state(analyzer) is VADState.QUIET
    assert sdk_internals.vad_confirmed_state(processor) is VADState.QUIET
    assert sdk_internals.vad_quiet_windows(analyzer) == 0
    await analyzer.analyze_audio(bytes(16_000))  # 0.5 s of silence: buffered, analysed
    sdk_internals.reset_vad(processor, analyzer)
    assert sdk_internals.vad_suspected_state(analyzer) is VADState.QUIET


async def test_the_media_join_is_skipped_for_one_service_only() -> None:
    """Direct mode changes the client of its own service; the class and other clients
    keep pipecat's LiveKit join (the old patch replaced it process-wide), shielded."""
    original = HeyGenClient._livekit_connect
    async with aiohttp.ClientSession() as http:
        def service_with_client(receive_media: bool) -> tuple[FastHeyGenVideoService,
                                                              HeyGenClient]:
            service = FastHeyGenVideoService(api_key="k", session=http,
                                             service_type=ServiceType.LIVE_AVATAR,
                                             receive_media=receive_media)
            client = HeyGenClient(api_key="k", session=http, params=TransportParams(),
                                  service_type=ServiceType.LIVE_AVATAR,
                                  callbacks=HeyGenCallbacks(
                                      on_connected=_noop, on_participant_connected=_noop,
                                      on_participant_disconnected=_noop))
            service._client = client  # what pipecat's setup() does before starting it
            return service, client

        direct, direct_client = service_with_client(receive_media=False)
        relay, relay_client = service_with_client(receive_media=True)
    assert direct.client is direct_client and relay.client is relay_client
    assert vars(direct_client)["_livekit_connect"].__name__ == "skip"
    # the other keeps pipecat's join, only shielded from cancellation (shield_media_join)
    assert vars(relay_client)["_livekit_connect"].__name__ == "shielded"
    assert HeyGenClient._livekit_connect is original
    for client in (direct_client, relay_client):  # both read video without the RGB copy
        assert "_process_video_frames" in vars(client)
    await direct_client._livekit_connect()  # a no-op: no room, no error


async def _noop(*_: object) -> None:
    return None
