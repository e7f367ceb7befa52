"""Nexmark event model (pure, deterministic): event n of a stream is a function of (n, seed) alone, so any
partitioning of the sequence yields the same events.

Proportions per 50 events: 1 person, 3 auctions, 46 bids. Hot auctions/bidders/sellers as in the reference
generator (ratios 2, 4, 4), prices 10^U(0,6) cents ×100 … , nominal sizes person 200 / auction 500 / bid 100
bytes (padded with `extra`). Event time: `base_ms + n * 1000 / events_per_second_nominal`."""
from __future__ import annotations

import random

PERSON, AUCTION, BID = 0, 1, 2
PROPORTION = 50
FIRST_ID = 1000
HOT_AUCTION_RATIO, HOT_BIDDER_RATIO, HOT_SELLER_RATIO = 2, 4, 4
IN_FLIGHT_AUCTIONS, ACTIVE_PEOPLE = 100, 1000
NUM_CATEGORIES, FIRST_CATEGORY = 5, 10
STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
CITIES = ("Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle",
          "Kent", "Cheyenne")
NAMES = ("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter")
NOMINAL = {PERSON: 200, AUCTION: 500, BID: 100}
BASE_MS = 1_700_000_000_000
NOMINAL_RATE = 10_000  # events/s that event time advances at
# Field layout of every event tuple (one schema for all kinds; unused fields are 0 / ""):
FIELDS = ("kind", "id", "ref", "price", "category", "date_time", "name", "city", "state", "extra")
OVERHEAD = 6 * 8 + 4 * 2  # Flink-serialised longs + string length bytes (approx.) before padding


def kind_of(n: int) -> int:
    rem = n % PROPORTION
    return PERSON if rem < 1 else AUCTION if rem < 4 else BID


def persons_before(n: int) -> int:
    return n // PROPORTION + (1 if n % PROPORTION > 0 else 0)


def auctions_before(n: int) -> int:
    return (n // PROPORTION) * 3 + max(0, min(n % PROPORTION, 4) - 1)


def _price(rnd: random.Random) -> int:
    return round(10 ** (rnd.random() * 6) * 100)


_POOL = "".join(random.Random(42).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4096))


def _pad(text_len: int, kind: int, rnd: random.Random) -> str:
    """Padding up to the nominal size: a slice of a fixed pool at a random offset (cheap, deterministic)."""
    need = max(0, NOMINAL[kind] - OVERHEAD - text_len)
    start = rnd.randrange(len(_POOL) - need)
    return _POOL[start:start + need]


def event(n: int, seed: int = 1) -> tuple:
    rnd = random.Random(seed * 1_000_003 + n * 7919)
    t = BASE_MS + n * 1000 // NOMINAL_RATE
    k = kind_of(n)
    if k == PERSON:
        pid = FIRST_ID + persons_before(n)
        name = f"{rnd.choice(NAMES)} {rnd.choice(NAMES)}"
        city, state = rnd.choice(CITIES), rnd.choice(STATES)
        return (PERSON, pid, 0, 0, 0, t, name, city, state, _pad(len(name) + len(city) + 2, PERSON, rnd))
    last_person = FIRST_ID + max(0, persons_before(n) - 1)
    if k == AUCTION:
        aid = FIRST_ID + auctions_before(n)
        if rnd.randrange(HOT_SELLER_RATIO) > 0:
            seller = (last_person // HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        else:
            seller = max(FIRST_ID, last_person - rnd.randrange(ACTIVE_PEOPLE))
        category = FIRST_CATEGORY + rnd.randrange(NUM_CATEGORIES)
        item = f"item-{aid}"
        return (AUCTION, aid, seller, _price(rnd), category, t, item, "", "", _pad(len(item), AUCTION, rnd))
    last_auction = FIRST_ID + max(0, auctions_before(n) - 1)
    if rnd.randrange(HOT_AUCTION_RATIO) > 0:
        auction = (last_auction // HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
    else:
        auction = max(FIRST_ID, last_auction - rnd.randrange(IN_FLIGHT_AUCTIONS))
    if rnd.randrange(HOT_BIDDER_RATIO) > 0:
        bidder = (last_person // HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
    else:
        bidder = max(FIRST_ID, last_person - rnd.randrange(ACTIVE_PEOPLE))
    return (BID, auction, bidder, _price(rnd), 0, t, "", "", "", _pad(0, BID, rnd))
