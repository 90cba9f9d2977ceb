"""The resolver chain: one query flows one way through short stages.

    decode        wire.parse_query: FORMERR or drop on garbage, before any work
    identify      ClientIdentity from the source address and EDNS options
    policy        decide() on the current snapshot: block, rewrite (safe search) or allow;
                  it sits above the cache so cached answers are still judged per profile
    cache         a fresh entry is answered at once, with no task and no dnslib object
    upstream      misses are fetched once per key (in-flight dedupe), with serve-stale
                  when every upstream fails or is slower than ``stale_after``
    policy again  the answer's CNAME chain is judged too (CNAME cloaking)
    encode        the client's ID and question, TTLs counted down, truncated to its size

``handle`` returns bytes when the answer is ready at once, a future for a plain UDP miss
(completed by callbacks from the upstream's reply), or a coroutine for the edge to run as
a task (TCP misses, serve-stale, safe-search rewrites): the hot paths (cache hits, blocked
names, plain misses) never create a task.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from familydns.config import Config
from familydns.errors import UpstreamError, WireError
from familydns.metrics import Metrics
from familydns.profiles.model import Action, BlockAnswer, Decision
from familydns.resolver import wire
from familydns.resolver.access import AccessList, RateLimiter
from familydns.resolver.cache import Cache, Entry, entry_of, render
from familydns.resolver.identity import ClientIdentity
from familydns.resolver.neighbours import NeighbourTable
from familydns.resolver.server import Pending
from familydns.resolver.upstream import ResultCallback

log = logging.getLogger("familydns.resolver")


class Policy(Protocol):
    """The policy seam: decisions over whatever snapshot is current."""

    def decide(self, client: ClientIdentity, qname: str, qtype: int, now: float) -> Decision: ...

    def decide_chain(self, client: ClientIdentity, names: Iterable[str], qtype: int,
                     now: float) -> Decision | None:
        """Judge an answer's CNAME chain, given as (query name, target, target...)."""


class Upstreams(Protocol):
    def forward(self, question: bytes, do: bool, cd: bool, on_done: ResultCallback) -> None:
        """Look ``question`` up; ``on_done`` gets the reply or the error, exactly once."""


EntryCallback = Callable[[Entry | None, BaseException | None], None]
"""A waiter on one upstream lookup: the entry (cached or not), or the error."""


DecisionSink = Callable[[float, ClientIdentity, str, int, Decision], None]

MEMO_SECONDS = 1.0
"""How long a finished UDP answer is reused for the same client and the same bytes.

Within a second TTLs are still exact (they count whole seconds) and a schedule, pause or
list change is felt at most a second late (a snapshot swap clears the memo at once)."""
MEMO_MAX = 10_000
BLOCK_SHAPES_MAX = 1024
CLIENTS_MAX = 4096
_ID = struct.Struct("!H")
_REUSED = {"answered": "cached", "nxdomain": "cached"}
"""A reused upstream answer is counted as a cache hit."""
# (valid until, answer bytes after the ID, its query counter, what to log on reuse)
Memo = tuple[float, bytes, tuple[str, str], "tuple[ClientIdentity, wire.Query, Decision] | None"]


class Resolver:
    def __init__(
        self,
        config: Config,
        upstreams: Upstreams,
        cache: Cache,
        policy: Policy,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        on_decision: DecisionSink | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.cache = cache
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.on_decision = on_decision
        self._fetches: dict[bytes, list[EntryCallback]] = {}
        """Upstream lookups under way by cache key, with their waiters."""
        self._per_client: dict[str, int] = {}
        self.neighbours = NeighbourTable()
        self.memo: dict[tuple[str, bytes], Memo] = {}
        self._older: dict[tuple[str, bytes], Memo] = {}
        """The memo's previous generation: when ``memo`` holds ``memo_max`` / 2 entries
        it becomes this one, and entries still asked for move back (an LRU at the
        cost of one more lookup on a memo miss, and no full clear that would drop the
        hot names along with the one-off ones)."""
        self.memo_max = MEMO_MAX
        self._clients: dict[tuple[str, str | None, str | None], ClientIdentity] = {}
        self._block_shapes: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
        """Blocked answers by shape: the header after the ID, and what follows the
        question (see ``_blocked``)."""
        self.apply_config(config)

    def apply_config(self, config: Config) -> None:
        """Take the settings the chain reads per query (at start and on reload)."""
        self.config = config
        self.max_udp = config.server.max_udp_size
        self.access = AccessList.build(config.server.allow_from)
        self.limiter = RateLimiter(config.server.rate_limit, config.server.rate_limit_burst)
        self.local_domains = tuple(d.strip(".").lower() for d in config.household.local_domains)
        self.forget_answers()

    def forget_answers(self) -> None:
        """Drop memoised answers: called when the policy snapshot is replaced."""
        self.memo.clear()
        self._older.clear()
        self._block_shapes.clear()

    # ------------------------------------------------------------------ entry point

    def handle(self, data: bytes, address: str, transport: str) -> bytes | None | Pending:
        if not self.access.allowed(address):
            return self._refuse(data, "not_allowed")
        now = self.clock()
        if not self.limiter.allow(address, now):
            self.metrics.dropped.labels("rate_limit").inc()
            return None
        if transport == "udp":
            key = (address, data[2:])
            memo = self.memo.get(key)
            if memo is None:
                memo = self._older.get(key)
                if memo is not None and now < memo[0]:
                    self._remember(key, memo)
            if memo is not None and now < memo[0]:
                self.metrics.query_reused(memo[2])
                if memo[3] is not None:
                    self._report(now, *memo[3])
                return data[:2] + memo[1]
        start = time.perf_counter()
        try:
            query = wire.parse_query(data)
        except WireError as err:
            self.metrics.malformed.labels(transport).inc()
            log.debug("malformed query from %s: %s", address, err.reason)
            return wire.error_response(data, err, self.max_udp)
        limit = self._limit(query, transport)
        if query.qclass != wire.C_IN:
            return self._done(query, wire.build_response(query, wire.REFUSED), "refused",
                              start, limit)
        edns = query.edns
        mac = edns.mac if edns is not None else None
        if mac is None:
            mac = self.neighbours.mac_for(address)
        client = self._client(address, mac, edns.subnet if edns is not None else None)
        decision = self.policy.decide(client, query.qname, query.qtype, now)
        action = decision.action
        if action is Action.BLOCK:
            self._report(now, client, query, decision)
            return self._done(query, self._blocked(query, decision), "blocked", start, limit,
                              client, now + MEMO_SECONDS, decision)
        if action is Action.REWRITE:
            if self.on_decision is not None and self.config.log.log_allowed:
                self._report(now, client, query, decision)
            return self._rewrite(query, decision, start, limit)
        logged = None
        if self.on_decision is not None and self.config.log.log_allowed:
            self.on_decision(now, client, query.qname, query.qtype, decision)
            logged = decision
        if query.qtype == wire.T_ANY:
            return self._done(query, self._minimal_any(query), "answered", start, limit,
                              client, now + MEMO_SECONDS)
        entry = self.cache.get(query.key, now)
        if entry is not None and entry.fresh(now):
            self.metrics.cache_event("hits")
            return self._answer(query, client, entry, now, start, limit, "cached",
                                logged=logged, decision=decision)
        self.metrics.cache_event("misses")
        waiting = self._per_client.get(address, 0)
        if waiting >= self.config.server.max_inflight_per_client:
            self.metrics.dropped.labels("client_inflight_limit").inc()
            return None
        self._per_client[address] = waiting + 1
        if entry is None and transport == "udp":
            return self._miss(query, client, start, limit, decision)
        return self._resolve(query, client, entry, start, limit, decision)

    def _client(self, address: str, mac: str | None, subnet: str | None) -> ClientIdentity:
        """The same ClientIdentity for the same device, so the policy's per-client memo
        finds it by identity rather than by comparing fields."""
        key = (address, mac, subnet)
        client = self._clients.get(key)
        if client is None:
            if len(self._clients) >= CLIENTS_MAX:
                self._clients.clear()
            client = self._clients[key] = ClientIdentity(address, mac, subnet)
        return client

    def _refuse(self, data: bytes, reason: str) -> bytes | None:
        """REFUSED for a client outside the access list: no decoding beyond the header,
        no policy, no upstream query."""
        self.metrics.dropped.labels(reason).inc()
        if len(data) < 12 or data[2] & 0x80:
            return None  # never answer a response: two servers could bounce it for ever
        return wire.error_response(data, WireError(reason, wire.peek_id(data), wire.REFUSED),
                                   self.max_udp)

    def _limit(self, query: wire.Query, transport: str) -> int:
        if transport != "udp":
            return 65535
        if query.edns is None:
            return 512
        return min(query.edns.udp_size, self.max_udp)

    def _done(self, query: wire.Query, response: bytes, result: str, start: float,
              limit: int, client: ClientIdentity | None = None, until: float = 0.0,
              logged: Decision | None = None) -> bytes:
        """Count the answer, fit it to the client, and memoise it for UDP when ``until``
        says how long the very same bytes stay right."""
        self.metrics.query(query.qtype, result, time.perf_counter() - start)
        response = wire.truncate(response, limit)
        if until and client is not None and limit < 65535:
            log_args = None if logged is None else (client, query, logged)
            self._remember((client.address, query.raw[2:]), (
                until, response[2:], self.metrics.query_key(query.qtype, _REUSED.get(
                    result, result)), log_args))
        return response

    def _remember(self, key: tuple[str, bytes], memo: Memo) -> None:
        if len(self.memo) >= self.memo_max // 2:
            self._older = self.memo
            self.memo = {}
        self.memo[key] = memo

    def _report(self, now: float, client: ClientIdentity, query: wire.Query,
                decision: Decision) -> None:
        if decision.action is Action.BLOCK:
            self.metrics.block(decision.profile, decision.category or "policy")
        if self.on_decision is not None:
            self.on_decision(now, client, query.qname, query.qtype, decision)

    # ------------------------------------------------------------------ allowed names

    def _answer(self, query: wire.Query, client: ClientIdentity, entry: Entry, now: float,
                start: float, limit: int, result: str, stale: bool = False,
                logged: Decision | None = None, decision: Decision | None = None) -> bytes:
        until = min(now + MEMO_SECONDS, entry.expires)
        if (decision is not None and decision.guard_private and entry.private
                and not self._local(query.qname)):
            guard = _rebinding_block(decision, query.qname)
            self._report(now, client, query, guard)
            return self._done(query, self._blocked(query, guard), "blocked", start, limit,
                              client, until, guard)
        if entry.cnames:
            blocked = self.policy.decide_chain(client, (query.qname, *entry.cnames),
                                                 query.qtype, now)
            if blocked is not None:
                self._report(now, client, query, blocked)
                return self._done(query, self._blocked(query, blocked), "blocked", start,
                                  limit, client, until, blocked)
        if stale:
            self.metrics.cache_event("stale")
            ede = wire.ede_option(wire.EDE_STALE, "served from cache: upstreams unreachable")
            response = render(entry, query, now, self.max_udp,
                              self.config.cache.stale_answer_ttl, ede)
            until = 0.0
        else:
            response = render(entry, query, now, self.max_udp)
        return self._done(query, response, result, start, limit, client,
                          until if until > now else 0.0, logged)

    def _local(self, name: str) -> bool:
        """Names of the home network (single labels, household.local_domains) may answer
        with private addresses."""
        return "." not in name or any(name == d or name.endswith("." + d)
                                      for d in self.local_domains)

    def _minimal_any(self, query: wire.Query) -> bytes:
        """RFC 8482: ANY gets one synthesised HINFO record, never an upstream query (ANY
        answers are the classic amplification payload)."""
        rdata = b"\x07RFC8482\x00"
        return wire.build_response(query, wire.NOERROR, answer=wire.rr(wire.T_HINFO, 3600,
                                                                       rdata), an=1,
                                   udp_size=self.max_udp)

    def _miss(self, query: wire.Query, client: ClientIdentity, start: float, limit: int,
              decision: Decision) -> asyncio.Future[bytes | None]:
        """The common miss (UDP, nothing stale to fall back on), driven by callbacks
        from the upstream's socket to the answer: no task and no coroutine frames."""
        out: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

        def done(entry: Entry | None, error: BaseException | None) -> None:
            self._release(client.address)
            if out.done():
                return
            if entry is None:
                if error is not None and not isinstance(error, UpstreamError):
                    out.set_exception(error)  # a bug: the listener logs it
                    return
                out.set_result(self._servfail(query, start, limit,
                                              error or UpstreamError("lookup failed")))
                return
            try:
                answer = self._answer(query, client, entry, self.clock(), start, limit,
                                      _result_of(entry), decision=decision)
            except Exception as exc:  # noqa: BLE001 - the listener reports it
                out.set_exception(exc)
                return
            out.set_result(answer)

        self._lookup(query.key, query.question, query.wants_dnssec,
                     bool(query.flags & wire.CD), done)
        return out

    def _servfail(self, query: wire.Query, start: float, limit: int,
                  error: BaseException) -> bytes:
        """Every upstream failed and nothing stale may stand in: say so (never NXDOMAIN,
        which would claim the name does not exist)."""
        log.debug("SERVFAIL for %s: %s", query.qname, error)
        return self._done(query, wire.build_response(query, wire.SERVFAIL), "servfail",
                          start, limit)

    def _release(self, address: str) -> None:
        left = self._per_client.get(address, 1) - 1
        if left > 0:
            self._per_client[address] = left
        else:
            self._per_client.pop(address, None)

    async def _resolve(self, query: wire.Query, client: ClientIdentity, stale: Entry | None,
                       start: float, limit: int, decision: Decision) -> bytes | None:
        try:
            return await self._resolve_inner(query, client, stale, start, limit, decision)
        finally:
            self._release(client.address)

    async def _resolve_inner(self, query: wire.Query, client: ClientIdentity,
                             stale: Entry | None, start: float, limit: int,
                             decision: Decision) -> bytes | None:
        do, cd = query.wants_dnssec, bool(query.flags & wire.CD)
        fetch = self._fetch(query.key, query.question, do, cd)
        try:
            if stale is not None and self.config.cache.serve_stale:
                entry = await asyncio.wait_for(fetch, self.config.cache.stale_after)
            else:
                entry = await fetch
        except (TimeoutError, UpstreamError) as exc:
            now = self.clock()
            if stale is not None and self.config.cache.serve_stale:
                return self._answer(query, client, stale, now, start, limit, "stale", True,
                                    decision=decision)
            return self._servfail(query, start, limit, exc)
        return self._answer(query, client, entry, self.clock(), start, limit,
                            _result_of(entry), decision=decision)

    def _lookup(self, key: bytes, question: bytes, do: bool, cd: bool,
                waiter: EntryCallback) -> None:
        """One upstream lookup per key at a time: ``waiter`` is called when it ends, with
        every other query that missed on the key meanwhile. It goes on after a waiter
        answered stale, and refreshes the cache."""
        waiters = self._fetches.get(key)
        if waiters is not None:
            waiters.append(waiter)
            return
        waiters = self._fetches[key] = [waiter]
        self.upstreams.forward(question, do, cd,
                               lambda reply, error: self._store(key, waiters, reply, error))

    def _fetch(self, key: bytes, question: bytes, do: bool, cd: bool) -> asyncio.Future[Entry]:
        """``_lookup`` as a future, for the coroutine paths. A waiter giving up cancels
        only its own future, never the lookup the others wait on."""
        fut: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)

        def settle(entry: Entry | None, error: BaseException | None) -> None:
            if fut.done():
                return
            if entry is None:
                fut.set_exception(error or UpstreamError("lookup failed"))
            else:
                fut.set_result(entry)

        self._lookup(key, question, do, cd, settle)
        return fut

    def _store(self, key: bytes, waiters: list[EntryCallback], reply: wire.Reply | None,
               error: BaseException | None) -> None:
        if self._fetches.get(key) is waiters:
            del self._fetches[key]
        entry = None
        if reply is not None:
            now = self.clock()
            entry = self.cache.put(key, reply, now) or entry_of(reply, now, now, reply.ttls)
        for waiter in waiters:
            try:
                waiter(entry, error)
            except Exception:
                log.exception("internal error answering a lookup of %r", key)

    # ------------------------------------------------------------------ policy answers

    def _blocked(self, query: wire.Query, decision: Decision) -> bytes:
        """The answer for a blocked name: built once per shape (how the profile answers,
        why, the query's type, flags and EDNS) and then copied with the new ID and
        question, since a flood of blocked names differs only in those."""
        edns = query.edns
        shape = (decision.block_answer, decision.ttl, decision.category, decision.source,
                 decision.block_addresses, query.qtype, query.flags & (wire.RD | wire.CD),
                 None if edns is None else edns.do)
        found = self._block_shapes.get(shape)
        if found is None:
            if len(self._block_shapes) >= BLOCK_SHAPES_MAX:
                self._block_shapes.clear()
            response = self._build_blocked(query, decision)
            found = self._block_shapes[shape] = (
                response[2:12], response[12 + len(query.question):])
        return _ID.pack(query.id) + found[0] + query.question + found[1]

    def _build_blocked(self, query: wire.Query, decision: Decision) -> bytes:
        """The answer for a blocked name, as the profile asks, with an EDE naming why."""
        ttl = decision.ttl
        mode = decision.block_answer
        ede = wire.ede_option(wire.EDE_FILTERED, _ede_text(decision))
        if mode is BlockAnswer.REFUSED:
            return wire.build_response(query, wire.REFUSED, ede=ede, udp_size=self.max_udp)
        if mode is BlockAnswer.NXDOMAIN:
            return wire.build_response(query, wire.NXDOMAIN, authority=wire.synthetic_soa(ttl),
                                       ns=1, ede=ede, udp_size=self.max_udp)
        addresses: Iterable[str] = ()
        if mode is BlockAnswer.ZERO:
            addresses = ("0.0.0.0", "::")
        elif mode is BlockAnswer.CUSTOM:
            addresses = decision.block_addresses
        records = [wire.rr(rtype, ttl, rdata) for rtype, rdata in map(wire.address_rdata,
                                                                      addresses)
                   if rtype == query.qtype]
        if not records:
            return wire.build_response(query, wire.NOERROR, authority=wire.synthetic_soa(ttl),
                                       ns=1, ede=ede, udp_size=self.max_udp)
        return wire.build_response(query, wire.NOERROR, answer=b"".join(records),
                                   an=len(records), ede=ede, udp_size=self.max_udp)

    def _rewrite(self, query: wire.Query, decision: Decision, start: float, limit: int
                 ) -> bytes | Coroutine[Any, Any, bytes | None]:
        """Safe search: a CNAME to the engine's safe host plus that host's addresses, or
        fixed addresses for engines that publish an IP instead of a host."""
        rewrite = decision.rewrite
        assert rewrite is not None
        ttl = decision.ttl
        if rewrite.cname is None:
            records = []
            if query.qtype == wire.T_A:
                records = [wire.rr(wire.T_A, ttl, wire.address_rdata(a)[1])
                           for a in rewrite.addresses_v4]
            if not records:
                return self._done(query, wire.build_response(
                    query, wire.NOERROR, authority=wire.synthetic_soa(ttl), ns=1,
                    udp_size=self.max_udp), "rewritten", start, limit)
            return self._done(query, wire.build_response(
                query, wire.NOERROR, answer=b"".join(records), an=len(records),
                udp_size=self.max_udp), "rewritten", start, limit)
        cname_rr = wire.rr(wire.T_CNAME, ttl, wire.encode_name(rewrite.cname))
        if query.qtype not in (wire.T_A, wire.T_AAAA):
            return self._done(query, wire.build_response(
                query, wire.NOERROR, answer=cname_rr, an=1, udp_size=self.max_udp),
                "rewritten", start, limit)
        return self._rewrite_resolve(query, rewrite.cname, cname_rr, ttl, start, limit,
                                     rewrite.fallback_v4)

    async def _rewrite_resolve(self, query: wire.Query, target: str, cname_rr: bytes, ttl: int,
                               start: float, limit: int, fallback_v4: tuple[str, ...]
                               ) -> bytes | None:
        question = wire.encode_name(target) + query.question[-4:]
        key = question.lower() + bytes((0,))
        now = self.clock()
        entry = self.cache.get(key, now)
        addresses: tuple[str, ...]
        if entry is not None and entry.fresh(now):
            addresses = entry.addresses
        else:
            try:
                addresses = (await self._fetch(key, question, False, False)
                             ).addresses
            except UpstreamError:
                addresses = entry.addresses if entry is not None else (
                    fallback_v4 if query.qtype == wire.T_A else ())
        # The target name sits in the CNAME's RDATA, right after the question and the
        # CNAME's fixed fields: point the address records' owners at it.
        target_off = 12 + len(query.question) + 2 + 10
        owner = bytes((0xC0 | (target_off >> 8), target_off & 0xFF))
        records = [cname_rr]
        for address in addresses:
            rtype, rdata = wire.address_rdata(address)
            if rtype == query.qtype:
                records.append(wire.rr(rtype, ttl, rdata, owner))
        response = wire.build_response(query, wire.NOERROR, answer=b"".join(records),
                                       an=len(records), udp_size=self.max_udp)
        return self._done(query, response, "rewritten", start, limit)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a shared lookup's failure as seen: every waiter got it already."""
    if not fut.cancelled():
        fut.exception()


def _result_of(entry: Entry) -> str:
    if entry.rcode == wire.SERVFAIL:
        return "servfail"
    return "nxdomain" if entry.rcode == wire.NXDOMAIN else "answered"


def _rebinding_block(allowed: Decision, qname: str) -> Decision:
    return Decision(
        Action.BLOCK, allowed.profile,
        f"{qname} answered with a private network address, which a public name never "
        f"needs: blocked as a DNS rebinding attempt for {allowed.profile}",
        source="rebinding protection", origin="rebinding protection")


def _ede_text(decision: Decision) -> str:
    what = decision.category or decision.source or "policy"
    return f"blocked by familydns: {what}"
