"""Forward a scoring request in callbacks: the common case, without a task, a future or a coroutine.

Most requests need no waiting on the router's side: the body came whole with the head, a slot is free, a
kept-alive connection to the replica is idle, and the answer is small enough to arrive in one read. For
those, the request is written to the replica from the client's read, and answered from the replica's
read, as Knative's activator keeps its request path small. Whatever must wait goes to the coroutines of
`proxy.forward`, with the same rules and the same log line:

- before anything is sent (no free slot: the queue; no idle connection: a connect; a body still arriving
  or streamed; an idle connection found reset as the request was written), no slot is held (a task can be
  cancelled before it starts, and would never give it back) and `forward` starts over, on the replica
  picked here if it still has room;
- once the replica's headers are in, an answer to stream (large, or of unknown length) or a body split
  over reads is relayed by `proxy.relay`.

What the callbacks do themselves is what `forward` does for the same events: 504 at the deadline with the
slot held until the replica answers or its own timeout, 502 when the replica fails, 499 when the client
leaves (the slot again held while the replica still computes).
"""
from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from .clock import monotonic
from .http.upstream import Exchange
from .pool import Replica
from .proxy import CHUNK, answer_headers, answer_length, relay, request_head

if TYPE_CHECKING:
    from .scoring import Call, Scoring

log = logging.getLogger("router.scoring")


def forward_now(call: "Call", scoring: "Scoring") -> bool:
    """Start forwarding `call` in callbacks if nothing needs waiting for; False: nothing was started."""
    request = call.request
    if not request.complete or request.failed or request.chunked:
        return False  # the body streams, or broke off: `forward` reads it, or answers 400/408
    length = request.content_length
    if length is not None and length > CHUNK:
        return False
    pool = call.service.pool
    replica = pool.pick()
    if replica is None:
        return False  # wait in the queue
    call.attempt.replica = replica  # `forward` prefers it, so the pick's rotation is not lost
    connections = scoring.router.upstream.connections(replica.url)
    conn = connections.idle()
    if conn is None:
        return False  # `forward` connects
    pool.take(replica)
    body = request.take() if request.body_exists else b""
    method, target, headers = request_head(request, call.path, call.request_id,
                                           len(body) if request.body_exists else None, False)
    forwarding = CallbackForward(call, scoring, replica)
    exchange = conn.start(b"".join((method, connections.prefix, target, connections.authority, headers, body)),
                          call.service.replica_timeout, forwarding)
    if exchange.unsent:
        # The kept-alive connection had been reset: the replica cannot have seen the request. `forward`
        # sends it again on a new connection; the request's body is in hand for it.
        exchange.listener = None
        pool.release(replica)
        request.put_back(body)
        call.attempt.retries += 1
        call.attempt.fresh = True
        call.metrics.retried()
        return False
    exchange.sent = True
    forwarding.wait_for(exchange)
    call.metrics.in_callbacks += 1
    return True


class CallbackForward:
    """A request written to its replica: the replica's events (`upstream.ExchangeListener`), the deadline
    (in its service's `Deadlines`) and the client leaving, each answered as `proxy.forward` would."""

    __slots__ = ("_call", "_scoring", "_replica", "_exchange", "_sent_at", "deadline", "_waiting", "_relaying")

    def __init__(self, call: "Call", scoring: "Scoring", replica: Replica) -> None:
        self._call = call
        self._scoring = scoring
        self._replica = replica
        self._exchange: Exchange | None = None
        self._sent_at = monotonic()
        self.deadline = 0.0
        self._waiting = False  # in its service's deadlines (`deadlines.Expiring`)
        self._relaying = False  # handed on to `proxy.relay`, which has started

    def wait_for(self, exchange: Exchange) -> None:
        call = self._call
        self._exchange = exchange
        self.deadline = deadline = call.started + call.service.scoring_timeout
        self._waiting = True
        call.service.deadlines.add(self, deadline, exchange._loop)
        call.response.wait_on(self._client_left)

    # ---- the replica (ExchangeListener) ------------------------------------------------------

    def exchange_answered(self, exchange: Exchange) -> None:
        self._stop_clock()
        length = answer_length(exchange)
        if length is None or length > CHUNK:
            self._hand_over(exchange)  # streamed, with the client's flow control
        # else: the body follows, most likely in this same read (exchange_ended or exchange_paused)

    def exchange_paused(self, exchange: Exchange) -> None:
        self._hand_over(exchange)  # the rest of the body comes in later reads, under the read timeout

    def exchange_ended(self, exchange: Exchange, error: BaseException | None) -> None:
        call, scoring = self._call, self._scoring
        call.service.pool.release(self._replica)
        if error is not None:
            if not exchange.status:  # before the headers: the deadline timer still runs
                self._stop_clock()
            scoring.fail(call, 502, "replica failed")
            return
        try:
            call.response.send(exchange.status, answer_headers(exchange, call.request_id, call.version_header),
                               exchange.take())
        except Exception:  # a bug: answered as the task path answers one (`server._run`), never left hanging
            log.exception("answering a scoring request in callbacks failed")
            call.response.internal_error()
            scoring.finish(call, 500)
            return
        scoring.finish(call, exchange.status)

    # ---- the router's side ---------------------------------------------------------------------

    def time_out(self) -> None:
        """The deadline passed before the replica's headers: 504, and the slot stays taken until the replica
        answers or its own scoring timeout passes."""
        self._waiting = False  # `Deadlines` let it go
        self._stop_clock()
        self._hold()
        self._scoring.fail(self._call, 504, "scoring timed out")

    def _client_left(self) -> None:
        if self._relaying:
            return  # `relay` is cancelled with its task and cleans up itself
        exchange = self._exchange
        assert exchange is not None  # set before the client can leave: the connection knows this call only after
        call = self._call
        if not exchange.status:  # the replica is still computing: its slot stays taken until it answers
            self._stop_clock()
            self._hold()
        else:
            exchange.listener = None
            exchange.close()
            call.service.pool.release(self._replica)
        self._scoring.finish(call, 499)

    def _stop_clock(self) -> None:
        """The wait for the replica's headers is over (answered, failed, timed out or given up): the request
        leaves its service's deadlines, and the wait is recorded for the log."""
        if self._waiting:
            self._waiting = False
            self._call.service.deadlines.remove(self)
        self._call.attempt.upstream_ms = (monotonic() - self._sent_at) * 1000

    def _hold(self) -> None:
        exchange, call = self._exchange, self._call
        assert exchange is not None
        exchange.listener = None
        exchange.hold(self._sent_at + call.service.replica_timeout,
                      functools.partial(call.service.pool.release, self._replica))

    def _hand_over(self, exchange: Exchange) -> None:
        exchange.listener = None
        call = self._call
        call.response.continue_in_task(self._scoring.complete(call, self._relay), self._client_left)

    async def _relay(self) -> int:
        self._relaying = True
        call, exchange = self._call, self._exchange
        assert exchange is not None
        return await relay(call.service.pool, self._replica, exchange, call.response, call.request_id,
                           call.version_header, call.attempt)

