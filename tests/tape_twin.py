"""A plain-Python twin of the tape rebuild (``envs/lob/rebuild_nb.py``): dicts of FIFO lists,
obviously correct, same rules (anonymous volume first in its level, unknown ids reduce it,
crossing adds clear what they cross, resync from the source's rows). The benchmark times
it beside the kernel."""

from __future__ import annotations

EMPTY_ASK, EMPTY_BID = 9999999999, -9999999999
STATS = (
    "mismatched_rows",
    "resyncs",
    "unknown_ids",
    "anonymous_reductions",
    "overshoots",
    "crossing_adds",
    "duplicate_adds",
    "halts",
)


def anonymous_id(side, tick_price):
    return -(2 * tick_price + (1 if side == 1 else 0)) - 1


class TwinRebuild:
    def __init__(self, tick, seed=()):
        self.tick = tick
        self.levels = {1: {}, -1: {}}  # side -> book price -> list of [id, qty], FIFO
        self.live = {}  # id -> [side, price, entry]
        self.stats = dict.fromkeys(STATS, 0)
        for side, price, qty in seed:  # (side, book price, qty) of anonymous volume
            self._rest(anonymous_id(side, price), side, price, qty)

    # ----------------------------------------------------------------- book primitives
    def _rest(self, oid, side, price, qty):
        entry = [oid, qty]
        self.levels[side].setdefault(price, []).append(entry)
        self.live[oid] = [side, price, entry]

    def _remove(self, oid):
        side, price, entry = self.live.pop(oid)
        q = self.levels[side][price]
        q.remove(entry)
        if not q:
            del self.levels[side][price]

    def _reduce(self, oid, size):
        entry = self.live[oid][2]
        if size >= entry[1]:
            over = size > entry[1]
            self._remove(oid)
            return over
        entry[1] -= size
        return False

    def best(self, side):
        prices = self.levels[side]
        if not prices:
            return None
        return max(prices) if side == 1 else min(prices)

    def _clear(self, side, price):
        for oid, _ in list(self.levels[side][price]):
            self._remove(oid)

    # ----------------------------------------------------------------------- messages
    def apply(self, event, oid, size, price, direction):
        p = price // self.tick
        if event == 1:
            if oid in self.live:
                self.stats["duplicate_adds"] += 1
                return
            opp = -direction
            crossed = False
            while True:
                b = self.best(opp)
                if b is None or (direction == 1 and b > p) or (direction == -1 and b < p):
                    break
                crossed = True
                self._clear(opp, b)
            self.stats["crossing_adds"] += crossed
            self._rest(oid, direction, p, size)
        elif event <= 4:
            if oid not in self.live:
                oid = anonymous_id(direction, p)
                if oid not in self.live:
                    self.stats["unknown_ids"] += 1
                    return
                self.stats["anonymous_reductions"] += 1
            self.stats["overshoots"] += self._reduce(oid, size)
        elif event == 7 and price == -1:
            self.stats["halts"] += 1

    def row(self, n_levels):
        out = []
        asks = sorted(self.levels[-1])[:n_levels]
        bids = sorted(self.levels[1], reverse=True)[:n_levels]
        for j in range(n_levels):
            if j < len(asks):
                out += [asks[j] * self.tick, sum(e[1] for e in self.levels[-1][asks[j]])]
            else:
                out += [EMPTY_ASK, 0]
            if j < len(bids):
                out += [bids[j] * self.tick, sum(e[1] for e in self.levels[1][bids[j]])]
            else:
                out += [EMPTY_BID, 0]
        return out

    # ------------------------------------------------------------------------- resync
    def resync(self, ref):
        lref = len(ref) // 4
        for side, col in ((-1, 0), (1, 2)):
            shown = {ref[4 * j + col] // self.tick for j in range(lref) if ref[4 * j + col + 1] > 0}
            full = len(shown) == lref
            bound = ref[4 * (lref - 1) + col] // self.tick if full else None
            for p in list(self.levels[side]):
                inside = bound is None or (p >= bound if side == 1 else p <= bound)
                if inside and p not in shown:
                    self._clear(side, p)
        for j in range(lref):
            for side, col in ((-1, 0), (1, 2)):
                if ref[4 * j + col + 1] > 0:
                    self._match(side, ref[4 * j + col] // self.tick, ref[4 * j + col + 1])

    def _match(self, side, p, qty):
        q = self.levels[side].get(p, [])
        diff = qty - sum(e[1] for e in q)
        anon = anonymous_id(side, p)
        if diff > 0:
            if anon in self.live:
                self.live[anon][2][1] += diff
            else:
                self._rest(anon, side, p, diff)
            return
        need = -diff
        if need and anon in self.live:
            take = min(need, self.live[anon][2][1])
            self._reduce(anon, take)
            need -= take
        while need:
            oid, have = self.levels[side][p][-1]
            take = min(need, have)
            self._reduce(oid, take)
            need -= take


def twin_snapshots(messages, tick, n_levels, seed=(), ref=None, resync=False):
    """Rows after every message (n_levels deep) and the stats, the kernel's way."""
    twin = TwinRebuild(tick, seed)
    lref = 0 if ref is None else len(ref[0]) // 4
    depth = max(n_levels, lref)
    rows = []
    for i, m in enumerate(messages):
        twin.apply(
            int(m["event"]),
            int(m["order_id"]),
            int(m["size"]),
            int(m["price"]),
            int(m["direction"]),
        )
        row = twin.row(depth)
        if lref:
            want = [int(x) for x in ref[i]]
            if row[: 4 * lref] != want:
                twin.stats["mismatched_rows"] += 1
                if resync:
                    twin.resync(want)
                    twin.stats["resyncs"] += 1
                    row = twin.row(depth)
        rows.append(row[: 4 * n_levels])
    return rows, twin.stats
