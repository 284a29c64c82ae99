"""Locks in FiftyOne's database: one holder at a time per name, across the
processes and machines that share the database.

A lock is one document ``{_id: name, host, pid, started, token, since,
beat}`` in the ``jina_v4_locks`` collection. Taking it is one insert with
the name as primary key, so of two processes that try at once exactly one
wins. A holder that died without releasing is recognised and replaced:

- on the holder's own host and pid namespace (containers of one host may
  share its name), by its process being gone (or being another process
  that reused the pid: the process start time differs);
- anywhere, by a heartbeat older than ``stale_after`` seconds.

Taking over a dead holder's lock is a conditional replace (only if the
document still carries the dead holder's token), so two processes that
both see it dead cannot both win.
"""

import datetime
import logging
import os
import socket
import time
import uuid

import fiftyone.core.odm as foo

logger = logging.getLogger(__name__)

COLLECTION = "jina_v4_locks"


class LockHeld(RuntimeError):
    """The lock is held by another live process.

    Attributes:
        name: the lock's name
        holder: the holder's document (``host``, ``pid``, ``since``, ...)
    """

    def __init__(self, name, holder, message=None):
        self.name = name
        self.holder = holder
        super().__init__(message or "%s is held by %s" % (name, describe(holder)))


def describe(holder):
    """``pid 123 on host h since 2026-12-03 13:00:00 UTC`` for messages."""
    since = holder.get("since")
    when = since.strftime("%Y-%m-%d %H:%M:%S UTC") if since else "?"
    return "pid %s on host %s since %s" % (
        holder.get("pid"),
        holder.get("host"),
        when,
    )


def _collection():
    return foo.get_db_conn()[COLLECTION]


def _now():
    # MongoDB keeps milliseconds, naive UTC
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def process_start(pid):
    """The start time of process ``pid`` in clock ticks since boot (Linux),
    or None where it cannot be read."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None

    # the command name is in parentheses and may hold spaces
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_namespace():
    """This process's pid namespace (Linux), or None where unknown."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_alive(pid, started=None):
    """Whether process ``pid`` of this host is alive (and, when
    ``started`` is given and readable, is the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False

    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False

    return True


class Lock(object):
    """A named lock in FiftyOne's database.

    Args:
        name: what is locked, e.g. ``build:<dataset id>:<brain key>``
        stale_after (600): seconds without a heartbeat after which a holder
            on another host counts as dead
        purpose (None): what the holder does, for messages
    """

    def __init__(self, name, stale_after=600.0, purpose=None):
        self.name = name
        self.stale_after = float(stale_after)
        self.purpose = purpose
        self.token = uuid.uuid4().hex
        self.held = False
        self._last_beat = 0.0

    def _document(self):
        now = _now()
        pid = os.getpid()
        return {
            "_id": self.name,
            "host": socket.gethostname(),
            "pid": pid,
            "started": process_start(pid),
            "pid_namespace": pid_namespace(),
            "token": self.token,
            "purpose": self.purpose,
            "since": now,
            "beat": now,
        }

    def is_dead(self, holder, same_process_is_dead=False):
        """Whether ``holder`` (a lock document) is gone."""
        namespace = holder.get("pid_namespace")
        if holder.get("host") == socket.gethostname() and namespace in (
            None,
            pid_namespace(),
        ):
            if holder.get("pid") == os.getpid():
                return same_process_is_dead and holder.get("token") != self.token
            return not process_alive(holder.get("pid", -1), holder.get("started"))

        beat = holder.get("beat")
        if beat is None:
            return True
        age = (_now() - beat).total_seconds()
        return age > self.stale_after

    def acquire(self, wait=0.0, poll=0.2, same_process_is_dead=False):
        """Takes the lock, waiting up to ``wait`` seconds for a live holder.

        Args:
            wait (0.0): seconds to wait for a live holder to release
            poll (0.2): seconds between tries
            same_process_is_dead (False): whether a lock left by another
                holder in this very process counts as abandoned (an
                earlier call that failed, in a notebook say)

        Raises:
            LockHeld: when a live holder keeps the lock past ``wait``
        """
        import pymongo.errors

        if self.held:
            return self
        collection = _collection()
        deadline = time.monotonic() + wait
        while True:
            try:
                collection.insert_one(self._document())
                self.held = True
                self._last_beat = time.monotonic()
                return self
            except pymongo.errors.DuplicateKeyError:
                pass

            holder = collection.find_one({"_id": self.name})
            if holder is None:
                continue  # released in between: try again at once

            if holder.get("token") == self.token:
                self.held = True
                return self

            if self.is_dead(holder, same_process_is_dead):
                replaced = collection.replace_one(
                    {"_id": self.name, "token": holder.get("token")},
                    self._document(),
                )
                if replaced.matched_count:
                    logger.info(
                        "Took over %s from %s, which is gone",
                        self.name,
                        describe(holder),
                    )
                    self.held = True
                    self._last_beat = time.monotonic()
                    return self
                continue

            if time.monotonic() >= deadline:
                raise LockHeld(self.name, holder)

            time.sleep(poll)

    def heartbeat(self, every=10.0):
        """Tells others this holder is alive (at most once per ``every``
        seconds); returns False when the lock was taken from it."""
        if not self.held:
            return False
        if time.monotonic() - self._last_beat < every:
            return True

        result = _collection().update_one(
            {"_id": self.name, "token": self.token},
            {"$set": {"beat": _now()}},
        )
        self._last_beat = time.monotonic()
        if not result.matched_count:
            self.held = False
            return False
        return True

    def release(self):
        """Releases the lock if this object holds it."""
        if not self.held:
            return
        self.held = False
        try:
            _collection().delete_one({"_id": self.name, "token": self.token})
        except Exception as e:  # the database may be gone at exit
            logger.debug("Could not release %s: %s", self.name, e)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *args):
        self.release()


def holder(name):
    """The document of the lock's holder, or None when it is free."""
    return _collection().find_one({"_id": name})


def break_lock(name):
    """Deletes a lock whatever its holder (for a holder on another machine
    that is known to be gone); returns whether there was one."""
    return bool(_collection().delete_one({"_id": name}).deleted_count)
