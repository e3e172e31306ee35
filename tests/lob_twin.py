"""A tiny, obviously-correct pure-Python order book: the twin the numba kernels are tested against.

Same rules as trendgym.envs.lob: price-time priority, makers' prices, market remainder dropped,
icebergs refill at the back of the queue, modify-down keeps priority, cancel of a dead id is a
no-op, a batch is atomic.
"""

import copy
from collections import deque


class TwinBook:
    def __init__(self):
        self.levels = {}  # price -> deque of orders (dicts), FIFO
        self.live = {}  # id -> order dict
        self.fills = {}  # owner -> [bought_qty, bought_value, sold_qty, sold_value, maker, taker]

    # --------------------------------------------------------------- helpers
    def best(self, side):
        prices = [p for p, q in self.levels.items() if q and q[0]["side"] == side]
        if not prices:
            return None
        return max(prices) if side == 1 else min(prices)

    def depth(self, side, n):
        prices = sorted(
            (p for p, q in self.levels.items() if q and q[0]["side"] == side), reverse=(side == 1)
        )
        return [[p, sum(o["qty"] for o in self.levels[p])] for p in prices[:n]]

    def queue_ahead(self, oid):
        o = self.live.get(oid)
        if o is None:
            return None
        ahead = 0
        for other in self.levels[o["price"]]:
            if other is o:
                return ahead
            ahead += other["qty"]
        raise AssertionError("live order not in its level")

    def _book_fill(self, owner, side, price, qty, maker):
        row = self.fills.setdefault(owner, [0, 0, 0, 0, 0, 0])
        if side == 1:
            row[0] += qty
            row[1] += qty * price
        else:
            row[2] += qty
            row[3] += qty * price
        row[4 if maker else 5] += qty

    def _match(self, taker_id, side, owner, qty, limit, trades):
        while qty > 0:
            best = self.best(-side)
            if best is None or (
                limit and ((side == 1 and best > limit) or (side == -1 and best < limit))
            ):
                break
            q = self.levels[best]
            while qty > 0 and q:
                maker = q[0]
                t = min(qty, maker["qty"])
                trades.append((taker_id, maker["id"], best, t, side, owner, maker["owner"]))
                self._book_fill(owner, side, best, t, False)
                self._book_fill(maker["owner"], -side, best, t, True)
                qty -= t
                maker["qty"] -= t
                if maker["qty"] == 0:
                    q.popleft()
                    if maker["hidden"] > 0:
                        refill = min(maker["peak"], maker["hidden"])
                        maker["hidden"] -= refill
                        maker["qty"] = refill
                        q.append(maker)
                    else:
                        del self.live[maker["id"]]
            if not q:
                del self.levels[best]
        return qty

    def _limit(self, oid, side, owner, price, qty, peak, trades):
        left = self._match(oid, side, owner, qty, price, trades)
        if left > 0:
            shown = left if peak <= 0 or peak >= left else peak
            o = {
                "id": oid,
                "side": side,
                "owner": owner,
                "price": price,
                "qty": shown,
                "hidden": left - shown,
                "peak": peak if shown < left else 0,
            }
            self.levels.setdefault(price, deque()).append(o)
            self.live[oid] = o

    def _remove(self, o):
        q = self.levels[o["price"]]
        q.remove(o)
        if not q:
            del self.levels[o["price"]]
        del self.live[o["id"]]

    # --------------------------------------------------------------- batch API
    def process(self, msgs):
        """msgs: list of (kind, side, owner, price, qty, order_id, peak). Atomic."""
        saved = copy.deepcopy((self.levels, self.live, self.fills))
        trades = []
        for i, (kind, side, owner, price, qty, oid, peak) in enumerate(msgs):
            if kind == 0:
                if oid in self.live:
                    self.levels, self.live, self.fills = saved
                    raise ValueError(f"message {i}: limit order id {oid} is already live")
                self._limit(oid, side, owner, price, qty, peak, trades)
            elif kind == 1:
                self._match(oid, side, owner, qty, 0, trades)
            elif kind == 2:
                if oid in self.live:
                    self._remove(self.live[oid])
            elif kind == 3:
                o = self.live.get(oid)
                if o is None:
                    continue
                new_price = price if price > 0 else o["price"]
                remaining = o["qty"] + o["hidden"]
                if new_price == o["price"] and qty <= remaining:
                    cut = remaining - qty
                    from_hidden = min(cut, o["hidden"])
                    o["hidden"] -= from_hidden
                    o["qty"] -= cut - from_hidden
                else:
                    self._remove(o)
                    self._limit(oid, o["side"], o["owner"], new_price, qty, o["peak"], trades)
        return trades

    def resting(self):
        return sum(o["qty"] + o["hidden"] for o in self.live.values())
