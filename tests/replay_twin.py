"""A plain-Python twin of replay with the agent in the queue (``envs/execution/replay.py``):
the tape twin's FIFO dicts plus the agent's resting order, its fills and the liquidity it
took. Same model: an execution behind the agent, at a worse price, or hidden at its price
fills the agent first; a new order crossing the agent trades with it; messages on taken
liquidity are counted and only reduce what is left. Halt messages set the trading state
(-1 halted, 0 quoting, 1 open): outside open trading the agent never fills and its market
orders are refused."""

from __future__ import annotations

from tests.tape_twin import TwinRebuild, anonymous_id


class TwinReplay(TwinRebuild):
    def __init__(self, tick, orders, agent_id=None, agent_side=0, halt=0):
        """`orders`: (id, side, book price, qty, taken) in queue order, level by level."""
        super().__init__(tick)
        self.tagged = set()  # tape orders the agent took part of
        self.gone = set()  # tape orders the agent took all of
        for oid, side, price, qty, taken in orders:
            self._rest(oid, side, price, qty)
            if taken:
                self.tagged.add(oid)
        self.agent_id, self.agent_side = agent_id, agent_side
        self.filled_qty = self.filled_value = self.consumed_msgs = 0
        self.halt = halt  # 0 open, 1 halted, 2 quoting

    # ----------------------------------------------------------------- the agent
    def agent(self):
        """(price, qty, queue position) of the agent's resting order, or None."""
        if self.agent_id not in self.live:
            return None
        _, price, entry = self.live[self.agent_id]
        return price, entry[1], self.levels[self.agent_side][price].index(entry)

    def _fill(self, qty):
        price, _, _ = self.agent()
        self.filled_qty += qty
        self.filled_value += qty * price
        self._reduce(self.agent_id, qty)

    def market(self, side, qty):
        """The agent's market order walks the opposite side; what it takes is marked."""
        if self.halt != 0:
            return qty  # refused: nothing trades
        opp = -side
        while qty > 0 and self.best(opp) is not None:
            p = self.best(opp)
            oid, have = self.levels[opp][p][0]
            take = min(qty, have)
            self.filled_qty += take
            self.filled_value += take * p
            self._reduce(oid, take)
            (self.tagged if oid in self.live else self.gone).add(oid)
            qty -= take
        return qty

    def _ahead(self, oid, p, event):
        price, _, pos = self.agent()
        side = self.agent_side
        if (side == 1 and price > p) or (side == -1 and price < p):
            return True
        if price != p:
            return False
        if event == 5:
            return True
        if oid not in self.live:
            return False
        entry = self.live[oid][2]
        q = self.levels[side][p]
        return entry in q and q.index(entry) > pos

    # ----------------------------------------------------------------- tape messages
    def replay(self, event, oid, size, price, direction):
        p = price // self.tick
        side = self.agent_side
        if event == 7 and price in (-1, 0, 1):
            self.halt = {-1: 1, 0: 2, 1: 0}[price]
        open_ = self.halt == 0
        if open_ and event == 1 and self.agent() is not None and direction == -side:
            a = self.agent()[0]
            if (side == 1 and p <= a) or (side == -1 and p >= a):
                qty = min(size, self.agent()[1])
                self._fill(qty)
                if qty == size:
                    self.gone.add(oid)
                    return
                self.apply(event, oid, size, price, direction)
                if oid in self.live:
                    self._reduce(oid, qty)
                    self.tagged.add(oid)
                return
        if event in (4, 5):
            if (
                open_
                and self.agent() is not None
                and direction == side
                and self._ahead(oid, p, event)
            ):
                self._fill(min(size, self.agent()[1]))
            if event == 5:
                return
        if 2 <= event <= 4:
            hit, skip = self._consumed(oid, p, direction)
            self.consumed_msgs += hit
            if skip:
                return
        self.apply(event, oid, size, price, direction)

    def _consumed(self, oid, p, direction):
        if oid in self.live:
            return oid in self.tagged, False
        if oid in self.gone:
            return True, True
        anon = anonymous_id(direction, p)
        if anon in self.live:
            return anon in self.tagged, False
        return anon in self.gone, anon in self.gone

    def depth(self, side):
        prices = sorted(self.levels[side], reverse=side == 1)
        return [(p, sum(e[1] for e in self.levels[side][p])) for p in prices]
