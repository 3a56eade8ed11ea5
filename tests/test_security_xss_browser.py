"""Stored XSS: audience text (names, questions, hands), a host's title and the avatar's
captions rendered in Debian's Chromium on the viewer page, the presenter page and the
host console, against the real livekit-server.

Every payload must show as the literal text it is: no script runs (no dialog, no global
set), no element or event handler comes out of it, and the Content-Security-Policy never
has to block anything (a CSP report would mean markup got in and only the policy saved
the page).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

from tests.fixtures_web import FakeBot, WebClient, connect
from tests.helpers.browser import chromium, join_page, needs_chromium, open_page

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.timeout(180)]

TITLE = '<img src=x onerror="window.__pwned=\'title\'">'
NAMES = ['<img src=x onerror=alert("name1")>', '"><svg onload=alert("name2")>']
PRESENTER = "<b onmouseover=alert('p')>Pat</b>"
QUESTIONS = [
    '<img src=x onerror="window.__pwned=\'q1\';alert(\'q1\')">',
    "<script>window.__pwned='q2'</script> and <iframe src=javascript:alert('q3')>",
    '"><svg/onload=alert(\'q4\')> {{constructor.constructor("alert(\'q5\')")()}}',
    "javascript:alert('q6') \U0001f600 \u202eevil\u202c end",  # emoji; the bidi override goes
]
CAPTION = f"{NAMES[0]} asks: {QUESTIONS[0]}"
#: anything a payload would have produced in the DOM
INJECTED = ("img[src='x'], svg[onload], iframe, script:not([src]), [onerror], [onload], "
            "[onmouseover], b")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(tmp_path_factory: pytest.TempPathFactory):
    async with chromium(tmp_path_factory.mktemp("chromium-xss")) as ctx:
        yield ctx


async def _clean(page: Any, where: str, must_show: list[str]) -> None:
    """No script ran in ``page``, nothing was injected, and every payload shows as text."""
    state = await page.evaluate(
        "sel => ({pwned: window.__pwned ?? null, injected: [...document.querySelectorAll(sel)]"
        ".map(e => e.outerHTML.slice(0, 80)), text: document.body.innerText})", INJECTED)
    assert state["pwned"] is None, (where, state["pwned"])
    assert state["injected"] == [], (where, state["injected"])
    for text in must_show:
        assert text in state["text"], (where, text)


async def test_audience_text_is_shown_as_text_on_every_page(
    browser: Any, web: str, web_client: WebClient, livekit: Any,
) -> None:
    c = web_client
    w = await c.new_webinar(TITLE)
    room = w["room"]
    problems: list[str] = []
    dialogs: list[str] = []
    browser.on("page", lambda p: p.on("dialog", lambda d: (dialogs.append(d.message),
                                                           asyncio.ensure_future(d.dismiss()))))
    others = []
    async with FakeBot(livekit, room) as bot:
        try:
            pres = await join_page(browser, w["presenter_url"], PRESENTER, problems,
                                   ready="#floor[data-floor='yes']")
            viewer = await join_page(browser, f"{web}/w/{room}", NAMES[0], problems)
            await viewer.click("#hand-toggle")
            await viewer.wait_for_selector("#hand-card[data-hand='up']")
            await viewer.fill("#question-text", QUESTIONS[0])
            await viewer.click("#question-send")
            await viewer.wait_for_selector("#qa-list li .q-yours")
            for i, name in enumerate(NAMES[1:] + ["Mallory"]):
                who = (await c.join(room, f"xss-{i}", name=name)).data
                others.append(await connect(who["url"], who["token"]))
                for text in QUESTIONS[1:]:
                    r = await c.call("POST", f"/api/webinars/{room}/questions", {"text": text},
                                     token=who["token"])
                    assert r.status == 201, r.text
                raised = await c.call("POST", f"/api/webinars/{room}/hand", {"raised": True},
                                      token=who["token"])
                assert raised.status == 200, raised.text
            removed = await c.host("POST", f"/api/host/webinars/{room}/participants/xss-1/remove")
            assert removed.status == 200, removed.text
            await bot.caption(CAPTION)

            shown = [q.replace("\u202e", "").replace("\u202c", "") for q in QUESTIONS]
            await viewer.wait_for_function(
                f"() => document.querySelectorAll('#qa-list li').length >= {len(QUESTIONS)}",
                timeout=10000)
            await viewer.wait_for_selector("#captions .caption-text:has-text('asks:')")
            await _clean(viewer, "viewer", [TITLE, CAPTION, *shown, NAMES[1]])

            await pres.wait_for_function(
                f"() => document.querySelectorAll('#questions li').length >= {len(QUESTIONS)}",
                timeout=10000)
            await _clean(pres, "presenter", [TITLE, *shown, NAMES[0], NAMES[1]])

            host = await open_page(browser, f"{web}/host#key={c.settings.host_key}", problems)
            await host.wait_for_selector("body[data-auth='yes']", timeout=10000)
            await host.click(f"#webinars .w-item[data-room='{room}']")
            await host.wait_for_function(
                f"() => document.querySelectorAll('#host-questions li').length >= "
                f"{len(QUESTIONS)}", timeout=10000)
            await host.wait_for_selector("#hands li", timeout=10000)
            await host.wait_for_selector("#bans li", timeout=10000)
            await host.wait_for_selector("#participants tr[data-identity='xss-0']",
                                         timeout=10000)
            await _clean(host, "host console", [TITLE, *shown, *NAMES])
            for page in (viewer, pres, host):  # what a moving mouse would set off
                await page.hover("body")
            await asyncio.sleep(0.3)
            for page, where in ((viewer, "viewer"), (pres, "presenter"), (host, "host")):
                assert await page.evaluate("window.__pwned ?? null") is None, where
        finally:
            await asyncio.gather(*(r.disconnect() for r in others))
    assert dialogs == []
    blocked = [p for p in problems if "Content Security Policy" in p or "pageerror" in p]
    assert blocked == []
