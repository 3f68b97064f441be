"""Where IMPALA's actors run: local processes or Ray actors, behind one small interface.

An actor pool runs ``num_actors`` :class:`~course_lib.agents.impala.UnrollActor` s, built
by ``make_actor(actor_id, incarnation)``, and gives the learner three calls:

* ``publish(weights, version)``: new weights (a flat CPU vector); an actor takes the
  newest at the start of each unroll. The first call starts the actors.
* ``get(n)``: the next ``n`` unrolls, from whichever actors have one ready.
* ``close()``: stop every actor; safe to call twice, and called on errors and Ctrl-C.

``restarts`` counts actors that died (killed, crashed, or silent for ``timeout`` seconds
while the learner waited) and were started again; the learner goes on with the others
meanwhile. Past ``max_restarts`` the pool raises :class:`ActorFailure`. Every wait has a
timeout, so a dead actor never hangs the learner, and a learner that dies takes its
actors with it (they watch their parent and their pipe).

Each actor may send at most ``queue`` unrolls ahead of the learner: an actor that is
that far ahead waits for the learner, which bounds the natural policy lag.

Local backend: processes started by a fork server (or ``spawn`` where there is none, on
Windows): both are safe with threads, unlike a plain ``fork``, and a fork server that has
imported torch once starts each actor, or restarts it, in a fraction of a second. Weights
go through one shared-memory buffer guarded by a sequence counter (the learner is the
only writer, so actors never lock and a killed actor cannot leave a lock held); unrolls
come back as NumPy arrays, pickled, over one pipe per actor, whose end-of-file tells the
learner at once that the actor died.

Ray backend: the same actors as Ray actors, on a local Ray instance (started and shut
down here) or a running cluster (``address``, e.g. ``"auto"``; every node needs
course_lib installed). Ray is imported only here, only when asked for. Each actor has
``queue + 1`` unroll calls in flight; the weights ride along as an object reference and
are fetched only when they changed. The actors are named ``impala-...-actor<i>.<n>``
(actor ``i``, ``n``-th start), so ``ray list actors`` shows them.
"""
from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import pickle
import signal
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing import connection
from typing import Any, Callable, Protocol

import numpy as np
import torch

__all__ = ["ACTOR_BACKENDS", "ActorFailure", "ActorPool", "LocalActorPool", "RayActorPool", "check_backend",
           "make_actor_pool"]

ACTOR_BACKENDS = ("local", "ray")
RAY_MISSING = 'the ray backend needs Ray, which is not installed: pip install "course-lib[ray]"'

log = logging.getLogger("course_lib.impala")

# How often a waiting learner looks at its actors' health (seconds).
POLL_SECONDS = 0.5
# How long a new actor may take to send its first unroll (importing torch on a busy machine, Ray workers).
STARTUP_SECONDS = 120.0
# How long close() lets actors finish by themselves before it terminates them (seconds).
CLOSE_GRACE_SECONDS = 3.0


class ActorFailure(RuntimeError):
    """Actors died more often than ``max_actor_restarts`` allows."""


class ActorPool(Protocol):
    restarts: int

    def publish(self, weights: torch.Tensor, version: int) -> None: ...

    def get(self, n: int) -> list: ...

    def close(self) -> None: ...


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` for an unknown backend, ``RuntimeError`` when Ray is asked for but missing."""
    if backend not in ACTOR_BACKENDS:
        raise ValueError(f"unknown actor backend {backend!r}; accepted: {', '.join(ACTOR_BACKENDS)}")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise RuntimeError(RAY_MISSING)


def make_actor_pool(backend: str, make_actor: Callable[[int, int], Any], num_actors: int, *, queue: int = 1,
                    timeout: float = 60.0, max_restarts: int = 10, ray_address: str | None = None) -> ActorPool:
    """An actor pool of the named backend (see the module docstring)."""
    check_backend(backend)
    if backend == "ray":
        return RayActorPool(make_actor, num_actors, queue=queue, timeout=timeout, max_restarts=max_restarts,
                            address=ray_address)
    return LocalActorPool(make_actor, num_actors, queue=queue, timeout=timeout, max_restarts=max_restarts)


# ------------------------------------------------------------------ on the wire
def to_wire(unroll: Any) -> Any:
    """The unroll with its tensors as NumPy arrays: plain pickling, no shared-memory handles."""
    return unroll._replace(**{k: v.numpy() for k, v in unroll._asdict().items() if isinstance(v, torch.Tensor)})


def from_wire(unroll: Any) -> Any:
    return unroll._replace(**{k: _tensor(v) for k, v in unroll._asdict().items() if isinstance(v, np.ndarray)})


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing the array's memory, or a copy of it when it is read-only (Ray's object store)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


# -------------------------------------------------------------- what both share
@dataclass
class _Slot:
    """One running actor as the learner sees it."""

    actor_id: int
    incarnation: int
    handle: Any                      # a Process, or a Ray actor handle
    conn: Any = None                 # local: the learner's end of the pipe
    last_heard: float = field(default_factory=time.monotonic)
    delivered: int = 0               # unrolls received from this incarnation


class _PoolBase:
    startup_hint = ""  # added to the error when no actor could start

    def __init__(self, make_actor, num_actors: int, queue: int, timeout: float, max_restarts: int):
        if num_actors < 1 or queue < 1:
            raise ValueError(f"need num_actors >= 1 and queue >= 1; got {num_actors} and {queue}")
        self.make_actor = make_actor
        self.num_actors = num_actors
        self.queue = queue
        self.timeout = timeout
        self.max_restarts = max_restarts
        self.restarts = 0
        self.slots: list[_Slot | None] = [None] * num_actors
        self._closed = False
        self._last_get_end: float | None = None
        self._rotation = 0
        self._delivered = 0  # unrolls handed to the learner

    def _count_restart(self, slot: _Slot, reason: str) -> None:
        self.restarts += 1
        if not self._delivered and self.restarts >= self.num_actors:
            # Every start failed before any unroll came: a bug or a set-up problem, not bad luck.
            raise ActorFailure(f"IMPALA actors fail to start: {self.restarts} died before any unroll came, the "
                               f"last: actor {slot.actor_id} {reason}; see their errors above{self.startup_hint}")
        if self.restarts > self.max_restarts:
            raise ActorFailure(f"IMPALA actors failed {self.restarts} times, more than max_actor_restarts = "
                               f"{self.max_restarts}; the last: actor {slot.actor_id} {reason}")
        log.warning("impala: actor %d %s; restarted it (%d restart(s) so far, at most %d)",
                    slot.actor_id, reason, self.restarts, self.max_restarts)

    def _begin_get(self) -> None:
        """Time the learner spent elsewhere (learning, evaluating) does not count against actors."""
        if self._closed:
            raise RuntimeError("the actor pool is closed")
        now = time.monotonic()
        if self._last_get_end is not None:
            for slot in self.slots:
                if slot is not None:
                    slot.last_heard += now - self._last_get_end

    def _silent_slots(self) -> list[_Slot]:
        """Actors silent for longer than allowed (a starting actor gets at least STARTUP_SECONDS)."""
        now = time.monotonic()
        return [s for s in self.slots if s is not None
                and now - s.last_heard > (self.timeout if s.delivered else max(self.timeout, STARTUP_SECONDS))]

    def _ordered(self, slots: list[_Slot]) -> list[_Slot]:
        """Serve actors in turn, starting one further each call, so none is starved."""
        self._rotation = (self._rotation + 1) % self.num_actors
        return sorted(slots, key=lambda s: (s.actor_id - self._rotation) % self.num_actors)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


# ----------------------------------------------------------------- local backend
def _read_weights(header, weights: torch.Tensor, seen: int, learner):
    """Sequence-lock read: ``(copy, version, seq)`` if the weights changed since ``seen``, else None.

    The learner makes ``header[0]`` odd while it writes and even when done; a copy taken
    while the counter stayed at one even value is whole.
    """
    spins = 0
    while True:
        seq = header[0]
        if seq == seen:
            return None
        if seq % 2 == 0:
            copy, version = weights.clone(), header[1]
            if header[0] == seq:
                return copy, version, seq
        spins += 1
        if spins % 1000 == 0 and not learner.is_alive():
            raise EOFError("the learner is gone")
        time.sleep(1e-4)


def _local_actor_main(make_actor, actor_id: int, incarnation: int, header, shared_weights, conn, queue: int) -> None:
    """An actor process: read the newest weights, unroll, send; until the learner says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the learner, which then stops us
    torch.set_num_threads(1)  # the actors share the machine's cores: one thread each
    learner = multiprocessing.parent_process()
    try:
        actor = make_actor(actor_id, incarnation)
        weights = torch.frombuffer(shared_weights, dtype=torch.float32)
        seen, credits = -1, queue
        while learner.is_alive():
            fresh = _read_weights(header, weights, seen, learner)
            if fresh is not None:
                flat, version, seen = fresh
                actor.load_weights(flat, version)
            unroll = actor.unroll()
            while credits == 0:  # as far ahead as allowed: wait for the learner
                if conn.poll(1.0):
                    message = conn.recv()
                    if message is None:
                        return
                    credits += message
                elif not learner.is_alive():
                    return
            conn.send_bytes(pickle.dumps(("unroll", to_wire(unroll)), protocol=pickle.HIGHEST_PROTOCOL))
            credits -= 1
            while conn.poll():
                message = conn.recv()
                if message is None:
                    return
                credits += message
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return  # the learner closed the pipe or died
    except BaseException:
        try:
            conn.send_bytes(pickle.dumps(("error", traceback.format_exc())))
        except Exception:
            pass
        raise


class LocalActorPool(_PoolBase):
    """Actors as processes on this machine (see the module docstring)."""

    startup_hint = ("; a script that trains with the local backend must do it under "
                    "`if __name__ == \"__main__\":` (each actor process imports the script)")

    def __init__(self, make_actor, num_actors: int, *, queue: int = 1, timeout: float = 60.0, max_restarts: int = 10,
                 start_method: str | None = None):
        super().__init__(make_actor, num_actors, queue, timeout, max_restarts)
        if start_method is None:
            start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        self.ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # The server imports torch and the agent once; each actor is then a quick fork of it.
            self.ctx.set_forkserver_preload(["course_lib.agents.impala"])
        self._header = None
        self._weights: torch.Tensor | None = None

    # -- weights
    def publish(self, weights: torch.Tensor, version: int) -> None:
        if self._weights is None:
            self._shared = self.ctx.RawArray("f", weights.numel())
            self._weights = torch.frombuffer(self._shared, dtype=torch.float32)
            self._header = self.ctx.RawArray("q", 2)
            self._write(weights, version)
            for i in range(self.num_actors):
                self.slots[i] = self._spawn(i, 0)
        else:
            self._write(weights, version)

    def _write(self, weights: torch.Tensor, version: int) -> None:
        self._header[0] += 1  # odd: being written
        self._weights.copy_(weights.reshape(-1))
        self._header[1] = version
        self._header[0] += 1  # even: whole

    # -- processes
    def _spawn(self, actor_id: int, incarnation: int) -> _Slot:
        ours, theirs = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(
            target=_local_actor_main, name=f"impala-actor-{actor_id}", daemon=True,
            args=(self.make_actor, actor_id, incarnation, self._header, self._shared, theirs, self.queue),
        )
        process.start()
        theirs.close()
        return _Slot(actor_id, incarnation, process, ours)

    def _restart(self, slot: _Slot, reason: str) -> None:
        if self.slots[slot.actor_id] is not slot:
            return  # already replaced
        self._stop(slot)
        self.slots[slot.actor_id] = None
        self._count_restart(slot, reason)
        self.slots[slot.actor_id] = self._spawn(slot.actor_id, slot.incarnation + 1)

    @staticmethod
    def _stop(slot: _Slot, grace: float = 0.0) -> None:
        process = slot.handle
        if grace > 0:
            process.join(grace)
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
        slot.conn.close()

    # -- unrolls
    def get(self, n: int) -> list:
        if self._weights is None:
            raise RuntimeError("publish the first weights before asking for unrolls")
        self._begin_get()
        out: list = []
        while len(out) < n:
            waitables = {}
            for slot in self.slots:
                waitables[slot.conn] = slot
                waitables[slot.handle.sentinel] = slot
            ready = connection.wait(list(waitables), timeout=POLL_SECONDS)
            ready_slots = {id(waitables[obj]): waitables[obj] for obj in ready}
            for slot in self._ordered(list(ready_slots.values())):
                if len(out) == n:
                    break
                if self.slots[slot.actor_id] is not slot:
                    continue
                unroll = self._receive(slot)
                if unroll is not None:
                    out.append(unroll)
            for slot in self._silent_slots():
                self._restart(slot, f"sent nothing for {self.timeout:g} s")
        self._last_get_end = time.monotonic()
        self._delivered += len(out)
        return out

    def _receive(self, slot: _Slot):
        """One unroll from a ready actor, or None (and a restart) if it died."""
        if not slot.conn.poll():
            slot.handle.join(1.0)  # only the sentinel fired: the process ended
            self._restart(slot, _death_reason(slot.handle.exitcode))
            return None
        try:
            tag, payload = pickle.loads(slot.conn.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError):
            tag = payload = None  # the pipe closed: the actor died
        if tag is None:
            slot.handle.join(1.0)
            self._restart(slot, _death_reason(slot.handle.exitcode))
            return None
        if tag == "error":
            last = payload.strip().splitlines()[-1] if payload.strip() else "an error"
            log.warning("impala: actor %d failed:\n%s", slot.actor_id, payload)
            self._restart(slot, f"raised {last}")
            return None
        try:
            slot.conn.send(1)  # the learner took one: the actor may send one more
            listening = True
        except OSError:
            listening = False
        if not listening:
            self._restart(slot, "stopped listening")
        slot.last_heard = time.monotonic()
        slot.delivered += 1
        return from_wire(payload)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        slots = [s for s in self.slots if s is not None]
        for slot in slots:
            try:
                slot.conn.send(None)  # stop after the current unroll
            except OSError:
                pass
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        for slot in slots:
            self._stop(slot, grace=max(0.0, deadline - time.monotonic()))
        self.slots = [None] * self.num_actors


# ------------------------------------------------------------------- Ray backend
def import_ray():
    """``ray``, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RuntimeError(RAY_MISSING) from None
    return ray


class _DropRayTokenAuthNotice(logging.Filter):
    """Drops Ray's notice that a new local instance uses token authentication.

    Since Ray 2.5x, ``ray.init()`` without an address turns token authentication on and logs
    a warning that says so and how to opt out. For the local instance this pool starts, token
    authentication is the setting we want, so the notice is noise (it showed on stderr in
    chapter 05 of the book); every other message of that logger still goes through.
    """

    LOGGER = "ray._private.authentication.authentication_token_setup"

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


class RayUnrollActor:
    """What runs inside each Ray actor: an UnrollActor fed with weights from the object store."""

    def __init__(self, make_actor, actor_id: int, incarnation: int):
        torch.set_num_threads(1)
        self.actor = make_actor(actor_id, incarnation)

    def unroll(self, version: int, weights_box: list):
        if version != self.actor.policy_version:
            import ray
            self.actor.load_weights(_tensor(ray.get(weights_box[0])), version)
        return to_wire(self.actor.unroll())


class RayActorPool(_PoolBase):
    """Actors as Ray actors, on a local Ray instance or a cluster (see the module docstring)."""

    def __init__(self, make_actor, num_actors: int, *, queue: int = 1, timeout: float = 60.0, max_restarts: int = 10,
                 address: str | None = None):
        super().__init__(make_actor, num_actors, queue, timeout, max_restarts)
        self.ray = ray = import_ray()
        self._owns_ray = False
        if not ray.is_initialized():
            options: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.WARNING)
            if address is None:  # a local instance with room for every actor
                options["num_cpus"] = max(num_actors, os.cpu_count() or 1)
            notice, quiet = logging.getLogger(_DropRayTokenAuthNotice.LOGGER), _DropRayTokenAuthNotice()
            notice.addFilter(quiet)
            try:
                ray.init(address=address, **options)
            finally:
                notice.removeFilter(quiet)
            self._owns_ray = True
        # One CPU per actor where the cluster has them; a share of them where it has fewer.
        cpus = ray.cluster_resources().get("CPU", num_actors)
        self._actor_class = ray.remote(num_cpus=min(1.0, cpus / num_actors), max_restarts=0)(RayUnrollActor)
        self._name = f"impala-{os.getpid()}-{id(self):x}"
        self._inflight: dict[Any, _Slot] = {}
        self._version = None
        self._weights_box: list | None = None

    def publish(self, weights: torch.Tensor, version: int) -> None:
        self._weights_box = [self.ray.put(weights.detach().cpu().numpy())]
        self._version = version
        if all(slot is None for slot in self.slots):
            for i in range(self.num_actors):
                self.slots[i] = self._start(i, 0)

    def actor_name(self, actor_id: int, incarnation: int) -> str:
        return f"{self._name}-actor{actor_id}.{incarnation}"

    def _start(self, actor_id: int, incarnation: int) -> _Slot:
        handle = self._actor_class.options(name=self.actor_name(actor_id, incarnation)).remote(
            self.make_actor, actor_id, incarnation)
        slot = _Slot(actor_id, incarnation, handle)
        for _ in range(self.queue + 1):
            self._submit(slot)
        return slot

    def _submit(self, slot: _Slot) -> None:
        self._inflight[slot.handle.unroll.remote(self._version, self._weights_box)] = slot

    def _restart(self, slot: _Slot, reason: str) -> None:
        if self.slots[slot.actor_id] is not slot:
            return
        self._stop(slot)
        self.slots[slot.actor_id] = None
        self._count_restart(slot, reason)
        self.slots[slot.actor_id] = self._start(slot.actor_id, slot.incarnation + 1)

    def _stop(self, slot: _Slot) -> None:
        for ref in [r for r, s in self._inflight.items() if s is slot]:
            del self._inflight[ref]
        try:
            self.ray.kill(slot.handle, no_restart=True)
        except Exception:  # already gone
            pass

    def get(self, n: int) -> list:
        if self._weights_box is None:
            raise RuntimeError("publish the first weights before asking for unrolls")
        self._begin_get()
        errors = self.ray.exceptions
        out: list = []
        while len(out) < n:
            ready, _ = self.ray.wait(list(self._inflight), num_returns=1, timeout=POLL_SECONDS)
            for ref in ready:
                slot = self._inflight.pop(ref, None)
                if slot is None or self.slots[slot.actor_id] is not slot:
                    continue
                failure = None
                try:
                    wire = self.ray.get(ref, timeout=self.timeout)
                except errors.RayActorError as exc:
                    failure = f"died ({type(exc).__name__})"
                except errors.RayTaskError as exc:
                    log.warning("impala: actor %d failed:\n%s", slot.actor_id, exc)
                    failure = f"raised {type(exc.cause).__name__ if exc.cause else 'an error'}"
                except errors.GetTimeoutError:
                    failure = f"sent nothing for {self.timeout:g} s"
                if failure is not None:
                    self._restart(slot, failure)
                    continue
                slot.last_heard = time.monotonic()
                slot.delivered += 1
                self._submit(slot)
                out.append(from_wire(wire))
            for slot in self._silent_slots():
                self._restart(slot, f"sent nothing for {self.timeout:g} s")
        self._last_get_end = time.monotonic()
        self._delivered += len(out)
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for slot in self.slots:
            if slot is not None:
                self._stop(slot)
        self.slots = [None] * self.num_actors
        self._inflight.clear()
        self._weights_box = None
        if self._owns_ray:
            self.ray.shutdown()
