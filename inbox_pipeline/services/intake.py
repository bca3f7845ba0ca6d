"""Intake: find new objects in the inbox (the sensor), then register and archive each once (the run).

Finding is free of side effects, so that a sensor tick previewed in the UI (a
dry run whose requests are thrown away) changes nothing: ``find_pending`` only
lists the inbox or reads its queue, and the run requested for an object takes
it (``take_pending``, the run's first op). Dagster's run key (the object's name
and version) and the objects named by runs still going (``busy``) keep each
object in exactly one run.

Crash safety of taking, step by step (the run may be killed between any two):

1. ``read`` the pending object (size, sha256): nothing written yet.
2. ``register_inbound`` under its archive name: idempotent on the key, so a
   retry or re-execution that follows redoes it (same row).
3. ``archive`` (move out of the pending listing): idempotent, returns the
   archived key; the email's later steps read it from there.

Where the objects come from: an inbox with an announcement source (S3 event
notifications through SQS, ``?queue=``) hands over the objects announced since
the last tick, so a tick's cost does not depend on the bucket; a reconciling
tick also lists the inbox prefix, for objects whose notification was lost
(the queue created after they arrived, messages expired). In a burst
(``BURST_FROM`` announcements or more waiting) the tick lists the prefix instead
of reading the queue: one call names 1,000 objects where a queue read names 10;
the announcements are settled once the burst's emails are through. An inbox without
announcements is listed on every tick. An announcement is left in the queue
until its object is archived: it comes back after the queue's visibility
timeout, and is deleted (``forget``) once the object is no longer pending.

A pending name that was used before by a *different* email (same name, other
bytes: a person dropping ``issue.eml`` twice) is archived first, because the
archive picks its ``-dupN`` name, and registered under that name after: the
one window where a crash between the two leaves the object only in the
archive (it is still there, never deleted, and the log says which). A name
nobody should have chosen (a backslash, control characters, bytes that are not
UTF-8, too long to archive) is archived and registered under a plain stand-in
(``seams.inbox.archive_name``).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from inbox_pipeline.core.mime import recipient_hint
from inbox_pipeline.db.intake import (
    advance_state,
    fanout_copies_to_process,
    find_inbound,
    newest_named,
    register_inbound,
    set_storage_key,
)
from inbox_pipeline.db.models import InboundState
from inbox_pipeline.db.queue import fair_key
from inbox_pipeline.seams.inbox import (
    InboxObject,
    ObjectHead,
    ObjectNotFound,
    ObjectTooLarge,
    archive_name,
    dup_name,
)
from inbox_pipeline.services.context import Pipeline, utcnow
from inbox_pipeline.services.work import queue_taken, waiting_by_recipient



@dataclass(frozen=True)
class Registered:
    email_id: int
    storage_key: str  # the archived key: what the run reads
    size: int
    new: bool  # False when an earlier attempt registered it (a retry or re-execution)
    registered_at: datetime | None = None
    recipient: str = ""  # its first envelope recipient, when cheap to know (a batch's send order)


@dataclass
class PendingTick:
    """What a sensor tick found: the new objects to request runs for, and how it found them."""

    new: list[InboxObject] = field(default_factory=list)
    busy: int = 0  # pending objects a run already has (requested, running, or failed recently)
    listed: int = 0  # objects the listing returned (0 when the prefix was not listed)
    announced: int | None = None  # objects announced; None: the inbox has no announcement source
    reconciled: bool = False  # the prefix was listed (always, without an announcement source)
    unannounced: int = 0  # listed objects that were not announced (a lost or late notification)
    settled: int = 0  # announcements dropped: their object was archived meanwhile
    backlog: int | None = None  # announcements waiting on the queue when the tick began (None: no queue)
    burst: bool = False  # the backlog was a tick's worth or more: the prefix was listed instead of the queue read


@dataclass
class IntakeTick:
    """What taking some pending objects did."""

    registered: list[Registered] = field(default_factory=list)
    not_taken: list[tuple[str, str]] = field(default_factory=list)  # (key, why): could not be taken (still pending)
    queued: int = 0  # put in the work queue as each was taken (a take run: ``take_until_empty``)
    held_back: int = 0  # read, left in the inbox: their recipients had QUEUED_AHEAD unclaimed (a take run)
    found: PendingTick = field(default_factory=PendingTick)

    @property
    def email_ids(self) -> list[int]:
        """The inbound emails registered, each once, in id order (a take run's ``taken-ids`` tag)."""
        return sorted({r.email_id for r in self.registered})

    @property
    def errors(self) -> list[str]:
        """The objects that could not be taken, one line each."""
        return [f"{key!r}: {why}" for key, why in self.not_taken]

    # How the objects were found (``take_new_emails``), as the sensor reports it.
    @property
    def listed(self) -> int:
        return self.found.listed

    @property
    def announced(self) -> int | None:
        return self.found.announced

    @property
    def reconciled(self) -> bool:
        return self.found.reconciled

    @property
    def unannounced(self) -> int:
        return self.found.unannounced


LISTING_PAGE = 1000  # names one S3 listing call returns: what a tick takes in a burst
SETTLE_PER_TICK = 50  # a burst's announcements read after it, per tick: five queue reads, a short tick
BURST_FROM = 20  # announcements waiting that make a burst: two queue reads' worth, where one listing names 1,000
# Objects are taken in parallel: each is a few S3 and database round trips, so a burst of
# 200 waits ~1/8 as long before its emails go on.
INTAKE_THREADS = 8


def find_pending(
    pipeline: Pipeline, *, limit: int, reconcile: bool = True, busy: Collection[str] = (), settle: bool = True
) -> PendingTick:
    """Up to ``limit`` pending objects that no run has yet (``busy``: their names), in key order (in a
    burst, up to a listing's page: ``LISTING_PAGE``).

    Writes nothing: announced objects are looked up (still pending?) and an
    announcement whose object is gone is deleted from the queue, the one change,
    to a message that has done its work. Listing and queue errors propagate.
    ``settle``: after a burst, read and settle its announcements now (the caller passes False while
    the burst's emails are still being worked on).
    """
    inbox = pipeline.inbox
    tick = PendingTick()
    found: dict[str, InboxObject] = {}
    tick.backlog = inbox.announced_backlog()
    announced: list[InboxObject] | None = None
    listed: list[InboxObject] | None = None
    if tick.backlog is not None and tick.backlog >= min(limit, BURST_FROM):
        # A burst: one listing names up to 1,000 pending objects where reading the queue takes a call
        # per 10 announcements (and each comes back after its visibility timeout until settled), so
        # the tick takes a listing's page, not ``limit``: a burst is taken in as few runs as it can be.
        tick.burst = True
        page = max(limit, LISTING_PAGE)
        listed = inbox.list_pending(page + len(busy))
        fresh = [obj for obj in listed if obj.key not in busy]
        if listed or not settle:
            # The announcements wait: they are read (and settled) once the burst has been taken and
            # worked (``settle``: the caller has nothing waiting), off the burst's way.
            tick.listed, tick.reconciled, tick.announced, tick.busy = len(listed), True, 0, len(listed) - len(fresh)
            tick.new = sorted(fresh, key=lambda obj: obj.key)[:page]
            return tick
    if tick.burst:  # all taken and worked: settle some of its announcements each tick (10 a call)
        announced = inbox.take_announced(min(limit, SETTLE_PER_TICK))
    elif tick.backlog is not None:
        announced = inbox.take_announced(limit + len(busy))  # past runs' announcements, as the listing below
    tick.announced = None if announced is None else len(announced)
    pending = _still_pending(inbox, [obj.key for obj in announced or ()])
    for obj in announced or ():
        if obj.key in found:
            tick.busy += 1
        elif not pending[obj.key]:
            # Archived meanwhile (by its run, which may still be running): the announcement has done
            # its work. Settled now, not when the run ends, or a burst's announcements of taken emails
            # would keep coming back and crowd the later ones out of every tick.
            inbox.forget(obj.key)
            tick.settled += 1
        elif obj.key in busy:
            tick.busy += 1
        else:
            found[obj.key] = obj
    if announced is None or reconcile or tick.burst:
        # Busy objects come first in the listing as often as not: list past them.
        listed = inbox.list_pending(limit + len(busy)) if listed is None else listed
        tick.listed, tick.reconciled = len(listed), True
        taken = {obj.key for obj in announced or ()}
        for obj in listed:
            if obj.key in busy:
                tick.busy += 1
                continue
            if announced is not None and obj.key not in taken and not tick.burst:
                tick.unannounced += 1  # its notification was lost or is late
            found.setdefault(obj.key, obj)
    tick.new = sorted(found.values(), key=lambda obj: obj.key)[:limit]
    return tick


def _still_pending(inbox, keys: list[str]) -> dict[str, bool]:
    """Whether each announced object is still pending: one lookup each (S3: a HEAD request), in
    parallel, so a tick announcing a burst's 200 emails waits for ~25 round trips, not 200."""
    if len(keys) <= 1:
        return {key: inbox.is_pending(key) for key in keys}
    with ThreadPoolExecutor(min(INTAKE_THREADS, len(keys)), thread_name_prefix="pending") as pool:
        return dict(zip(keys, pool.map(inbox.is_pending, keys)))


def take_pending(pipeline: Pipeline, objects: list[InboxObject], *, now: datetime | None = None) -> IntakeTick:
    """Register and archive each object (a per-email run's first op); one object's error is reported in
    ``errors`` and never holds back the others (each is complete on its own, see above)."""
    tick = IntakeTick()
    if not objects:
        return tick
    with ThreadPoolExecutor(min(INTAKE_THREADS, len(objects)), thread_name_prefix="intake") as pool:
        results = pool.map(lambda obj: _guarded(_take_one, pipeline, obj, now), objects)
        for obj, result in zip(objects, results):
            _count(tick, obj, result, 0)
    return tick


def _guarded(fn, *args, **kwargs):
    """``fn``'s result, or the exception it raised (reported for its object; the others go on)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - reported; the object stays pending
        return exc


def _count(tick: IntakeTick, obj: InboxObject, result, queued: int) -> None:
    if isinstance(result, Exception):
        tick.not_taken.append((obj.key, f"{type(result).__name__}: {result}"))
    elif result is not None:
        tick.registered.append(result)
        tick.queued += queued


def in_turns(items: list, *, key, already: Mapping[str, int] | None = None) -> list:
    """``items`` reordered so that each ``key`` (a recipient) gets a turn in order of first appearance:
    a a a b a c -> a b c a a a. Within one key the order is kept. ``already``: turns each key has had
    before (by lower-cased key); a key's first item here is its turn ``already[key]``, so one that has
    had fewer goes first: with a: 2, ``a a b b`` -> b b a a... in turns from there."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault((key(item) or "").lower(), []).append(item)
    before = already or {}
    turns = [
        (before.get(name, 0) + i, order, item)
        for order, (name, group) in enumerate(groups.items())
        for i, item in enumerate(group)
    ]
    return [item for *_, item in sorted(turns, key=lambda t: t[:2])]


TAKE_FOR_SECONDS = 5 * 60.0  # a take run lists the inbox again for this long at most (then the sensor starts another)
TAKE_ROUND = 50  # a take run registers at most this many between listings (newcomers wait one round at most)
# ... and a recipient's email only while fewer than this many of theirs wait in the queue unclaimed: the
# rest of one user's hundreds stays in the inbox until the workers catch up, so the machine's CPU goes
# to converting and sending, not to registering and archiving what would only wait (in a burst of
# 450 for one user and 50 for another on 2 cores, the second user's last email was sent 12-14 s after
# its first arrived instead of 17-19 s: benchmarks/e2e.py).
QUEUED_AHEAD = 100
WAIT_SECONDS = 1.0  # a take run with only such emails left looks again this soon (for newcomers too)


def take_until_empty(
    pipeline: Pipeline,
    objects: list[InboxObject],
    *,
    now: datetime | None = None,
    busy: Callable[[], Collection[str]] = frozenset,
    for_seconds: float = TAKE_FOR_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_round: Callable[[IntakeTick], None] | None = None,
) -> IntakeTick:
    """A take run: take and queue ``objects`` (what the sensor found), then list the inbox and take
    what arrived meanwhile, again and again, until a listing finds nothing it has not tried, or for
    ``for_seconds``. So a burst that is still arriving is taken by the one run already going, not by
    a new run per sensor tick (each a process to start while the machine is busiest).

    Each email is queued as soon as it is archived, so workers start on a burst's first emails while
    the rest are still being taken. What is listed is read first (its size, hash and recipient, not its
    bytes kept; at most ``LISTING_PAGE`` ahead of what is registered), then registered, archived and queued ``TAKE_ROUND`` at a time, the recipients taken
    fewest times in this run first, in turns (``in_turns``): a user whose 50 emails arrive behind
    another's 450, or while those are being taken, has them queued within a round, not after the
    others. The first ``INTAKE_THREADS`` named go at once, so the workers have work within a round trip.
    A recipient with ``QUEUED_AHEAD`` emails unclaimed in the queue has no more taken until the workers
    claim some: the run waits (``WAIT_SECONDS`` between listings, taking newcomers meanwhile), and what
    it still holds when ``for_seconds`` is up stays in the inbox for the next take run (``held_back``).

    ``busy``: names of pending objects other runs have (a lone email's run), looked up each round
    and left to them. An object that could not be taken is tried once (``not_taken``). ``on_round``
    is called with the running totals after each round (the run's tags)."""
    tick = IntakeTick()
    tried: set[str] = set()  # read (waiting or taken) or failed: not read again
    waiting: list[_Read] = []  # read, not registered yet
    started = clock()
    batch = list(objects)

    def take(pool: ThreadPoolExecutor, reads: list[_Read]) -> None:
        for read, result in zip(reads, pool.map(lambda r: _guarded(_register_and_queue, pipeline, r, now), reads)):
            if isinstance(result, Exception):
                _count(tick, read.obj, result, 0)
            else:
                _count(tick, read.obj, *result)

    def read_all(pool: ThreadPoolExecutor, part: list[InboxObject]) -> list[_Read]:
        tried.update(obj.key for obj in part)
        reads = list(pool.map(lambda obj: _guarded(_read_one, pipeline, obj, keep=False), part))
        for obj, read in zip(part, reads):
            if isinstance(read, Exception):
                _count(tick, obj, read, 0)
        return [r for r in reads if not isinstance(r, Exception)]

    with ThreadPoolExecutor(INTAKE_THREADS, thread_name_prefix="intake") as pool:
        take(pool, read_all(pool, batch[:INTAKE_THREADS]))  # the workers' first emails, at once
        batch = batch[INTAKE_THREADS:]
        while True:
            waiting += read_all(pool, batch)
            taken = Counter((r.recipient or "").lower() for r in tick.registered)  # in this run, by recipient
            ordered = in_turns(waiting, key=lambda r: r.recipient, already=taken)
            round_, waiting = _next_round(ordered, waiting_by_recipient(pipeline) if ordered else {})
            take(pool, round_)
            tick.held_back = len(waiting)
            if on_round is not None and (round_ or not waiting):  # not while waiting on the workers
                on_round(tick)
            if clock() - started >= for_seconds:
                break  # what was read and not taken stays pending, for the next take run
            if waiting and not round_:
                sleep(WAIT_SECONDS)  # each recipient left has QUEUED_AHEAD unclaimed: the workers catch up
            # What was taken is pending no more; listed past are what could not be and what others have.
            still = {key for key, _ in tick.not_taken} | set(busy())
            listed = pipeline.inbox.list_pending(LISTING_PAGE + len(still) + len(waiting))
            # Read at most a listing's page ahead of what is registered: a burst of thousands is not
            # read (nor listed again) all at once, 50 at a time registered.
            room = max(0, LISTING_PAGE - len(waiting))
            batch = [obj for obj in listed if obj.key not in tried and obj.key not in still][:room]
            waiting = [read for read in waiting if read.obj.key not in still]  # another run took it meanwhile
            if not batch and not waiting:
                break
    return tick


def _next_round(ordered: list["_Read"], queued: Mapping[str, int]) -> tuple[list["_Read"], list["_Read"]]:
    """Up to ``TAKE_ROUND`` of ``ordered``, skipping a recipient's once ``QUEUED_AHEAD`` of theirs wait in
    the queue (``queued``: by recipient); returns (this round, the rest in order)."""
    ahead = Counter(queued)
    round_: list[_Read] = []
    rest: list[_Read] = []
    for read in ordered:
        key = fair_key(read.recipient)
        if len(round_) < TAKE_ROUND and ahead[key] < QUEUED_AHEAD:
            round_.append(read)
            ahead[key] += 1
        else:
            rest.append(read)
    return round_, rest


def _register_and_queue(pipeline: Pipeline, read: "_Read", now: datetime | None) -> tuple["Registered | None", int]:
    """A take run's one email: registered and archived (``_register_one``), then queued for the workers."""
    taken = _register_one(pipeline, read, now)
    return taken, (queue_taken(pipeline, [taken]) if taken is not None else 0)


def give_up_taking(pipeline: Pipeline, not_taken: list[tuple[str, str]]) -> None:
    """After the last attempt: an object registered but never archived gets its row failed with the
    reason (the object itself stays pending, for a person or a later run)."""
    for key, why in not_taken:
        with pipeline.sessions.begin() as session:
            for row in find_inbound(session, storage_key=archive_name(key)):
                # False: finished before (an older email under the same name), kept as it is.
                advance_state(session, row.id, InboundState.FAILED, f"could not move it out of the inbox: {why}"[:2000])


def take_new_emails(
    pipeline: Pipeline, *, limit: int, now: datetime | None = None, reconcile: bool = True
) -> IntakeTick:
    """Find and take up to ``limit`` pending emails in one go (scripts, benchmarks and tests)."""
    found = find_pending(pipeline, limit=limit, reconcile=reconcile)
    tick = take_pending(pipeline, found.new, now=now)
    tick.found = found
    return tick


# An object archived under a reused name gets "-dup1", "-dup2", ...: a retry looks this far.
_DUP_LOOKUP = 20


def _take_one(pipeline: Pipeline, obj, now: datetime | None, *, keep_raw: bool = True) -> "Registered | None":
    """Register and archive one pending object and return its registration, also when it was
    registered before (a retry or re-execution of the run carries on with it: every later stage
    is idempotent), or None when it is gone and was never registered."""
    return _register_one(pipeline, _read_one(pipeline, obj, keep=keep_raw), now)


@dataclass
class _Read:
    """What taking needs of one pending object, read once: its size, hash, recipient and the head
    its move needs (``data``: the bytes, only when the run parses them itself)."""

    obj: InboxObject
    size: int = 0
    sha: str = ""
    head: ObjectHead | None = None
    recipient: str = ""
    data: bytes | None = None
    gone: bool = False  # not pending (archived by an earlier attempt)


def _read_one(pipeline: Pipeline, obj, *, keep: bool) -> _Read:
    try:
        data, head = pipeline.inbox.read_to_archive(obj.key)  # head: the archive's move needs no second look
    except ObjectNotFound:
        return _Read(obj, gone=True)
    except ObjectTooLarge as exc:
        # Registered unread (its size says enough), so it is recorded, not retried: parsing fails it.
        return _Read(obj, exc.size, hashlib.sha256(f"unread {obj.key} {obj.version}".encode()).hexdigest())
    return _Read(obj, len(data), hashlib.sha256(data).hexdigest(), head, recipient_hint(data), data if keep else None)


def _register_one(pipeline: Pipeline, read: _Read, now: datetime | None) -> "Registered | None":
    """Register and archive what ``_read_one`` read (see ``_take_one``)."""
    inbox, sessions, obj = pipeline.inbox, pipeline.sessions, read.obj
    name = archive_name(obj.key)  # a plain, registrable name, whatever the sender or writer chose
    if read.gone:
        inbox.forget(obj.key)
        names = [name] + [dup_name(name, n) for n in range(1, _DUP_LOOKUP + 1)]
        with sessions() as session:  # archived by an earlier attempt: the newest email of that name
            row = newest_named(session, names)
            return None if row is None else Registered(row.id, row.storage_key, int(row.size), False, row.created_at)
    size, sha, head = read.size, read.sha, read.head
    received_at = obj.last_modified or now or utcnow()
    with sessions.begin() as session:
        row, created = register_inbound(session, storage_key=name, size=size, sha256=sha, received_at=received_at)
        row_id, row_sha, row_created = row.id, row.sha256, row.created_at
    if not created and row_sha != sha:
        # The name was used before by another email: archive first (the
        # archive chooses the new name), then register that name.
        archived = inbox.archive(obj.key, head=head)
        with sessions.begin() as session:
            row, created = register_inbound(
                session, storage_key=archived, size=size, sha256=sha, received_at=received_at
            )
            row_id, row_created = row.id, row.created_at
    else:
        archived = inbox.archive(obj.key, head=head)
        if archived != name:
            with sessions.begin() as session:
                set_storage_key(session, row_id, archived)
    if read.data is not None:  # kept only when this run parses it (a take run's workers are other processes)
        pipeline.keep_raw(archived, read.data)  # what was archived, for the run's parse (no second read)
    return Registered(row_id, archived, size, created, row_created, read.recipient)


def fanout_copies(pipeline: Pipeline, *, limit: int = 100) -> list[int]:
    """Copies that routing made for further users among an email's envelope recipients, not yet processed.

    They have no inbox object, so the sensor requests a run by their id (its run key keeps it to one).
    Reads only: a previewed tick changes nothing.
    """
    with pipeline.sessions() as session:
        return fanout_copies_to_process(session, limit=limit)
