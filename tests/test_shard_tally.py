"""The join API's shard choice without a cluster (broadcaster.web.shard_tally): a burst of
joins fills the emptiest shards evenly however late LiveKit's listing shows each page
and whenever it is taken (tests/test_shard_spread.py does it on the real cluster)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.web.shard_tally import PENDING_SECONDS, ShardTally, least

STEP_S = 0.1  # one join every 0.1 s; every page is listed within 2 s (< PENDING_SECONDS)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_burst_fills_the_emptiest_shards_whatever_the_listing_lags(
        data: st.DataObject) -> None:
    k = data.draw(st.integers(1, 6), label="shards")
    names = [f"w--a{i}" for i in range(1, k + 1)]
    start = data.draw(st.lists(st.integers(0, 20), min_size=k, max_size=k), label="start")
    n = data.draw(st.integers(1, 60), label="burst")
    # in joins: how long after its routing each page shows in the listing (up to 2 s)
    lags = data.draw(st.lists(st.integers(0, 20), min_size=n, max_size=n), label="lags")
    # before which joins LiveKit's listing is taken (the cache expired, a host polled)
    listings = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="listings")
    shown: dict[str, list[tuple[str, int]]] = {
        s: [(f"{s}-old{j}", -1) for j in range(c)] for s, c in zip(names, start, strict=True)}
    tally = ShardTally()
    tally.listing({s: [i for i, _ in v] for s, v in shown.items()}, 0.0)
    for i in range(n):
        if listings[i]:
            tally.listing({s: [who for who, at in v if at <= i] for s, v in shown.items()},
                          i * STEP_S)
        shard = least({s: tally.count(s) for s in names})
        tally.routed(shard, f"v{i}", i * STEP_S)
        shown[shard].append((f"v{i}", i + lags[i]))
    final = {s: len(v) for s, v in shown.items()}
    joined = {s for s, v in shown.items() if any(at >= 0 for _, at in v)}
    # water-filling: no shard took a join while another was two or more emptier
    assert max(final[s] for s in joined) <= min(final.values()) + 1, (start, final)


def test_a_page_that_never_connects_frees_its_seat() -> None:
    tally = ShardTally()
    tally.routed("w--a1", "gone", 0.0)
    tally.listing({"w--a1": []}, PENDING_SECONDS / 2)
    assert tally.count("w--a1") == 1  # on its way: counted
    tally.listing({"w--a1": []}, PENDING_SECONDS + 0.1)
    assert tally.count("w--a1") == 0  # a closed tab does not hold a seat for ever
    tally.routed("w--a1", "back", 20.0)
    tally.routed("w--a2", "back", 21.0)  # routed again elsewhere: counted once
    assert (tally.count("w--a1"), tally.count("w--a2")) == (0, 1)
