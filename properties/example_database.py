"""Hypothesis' example database, named by one string: where failures found once are kept, so
that every later run replays them first.

    a directory          DirectoryBasedExampleDatabase (the default: .normspec/examples)
    redis://HOST:PORT/N  RedisExampleDatabase on database N of that server, shared by every
                         host that names it (the `redis` client package must be installed)
    none                 no database: nothing is saved, nothing replayed

Plain Python with no pytest import, so that the suite (the `--database` option) and the
command line (which checks the string before a run starts) read it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

#: Where the dev and hunt profiles keep their examples unless told otherwise (relative to the
#: directory a run starts in).
DEFAULT_DATABASE = ".normspec/examples"
#: Every key normspec writes to a shared Redis server starts with this.
REDIS_KEY_PREFIX = b"normspec-example:"


class DatabaseSpecError(ValueError):
    """A database string that names nothing usable."""


@dataclass(frozen=True)
class RedisAddress:
    """A Redis server and database number, from redis://HOST:PORT/N."""

    host: str
    port: int
    db: int

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse(spec: str) -> RedisAddress | Path | None:
    """What `spec` names: a RedisAddress, a directory, or None for "none"."""
    if spec.strip().lower() == "none":
        return None
    if not spec.startswith("redis://"):
        if "://" in spec:
            raise DatabaseSpecError(
                f"unknown database {spec!r}: give a directory, redis://HOST:PORT/N or none"
            )
        return Path(spec)
    parts = urlsplit(spec)
    path = parts.path.strip("/") or "0"
    try:
        port = parts.port or 6379
    except ValueError:
        raise DatabaseSpecError(f"bad port in {spec!r}: redis://HOST:PORT/N") from None
    if not parts.hostname or not path.isdigit():
        raise DatabaseSpecError(
            f"bad Redis address {spec!r}: redis://HOST:PORT/N, N a database number"
        )
    return RedisAddress(parts.hostname, port, int(path))


def example_database(spec: str) -> ExampleDatabase | None:
    """The Hypothesis database `spec` names (see the module docstring)."""
    target = parse(spec)
    if target is None:
        return None
    if isinstance(target, Path):
        return DirectoryBasedExampleDatabase(str(target))
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError as error:
        raise DatabaseSpecError(
            f"--database {spec} needs the redis client: pip install redis ({error})"
        ) from None
    client = redis.Redis(host=target.host, port=target.port, db=target.db)
    return RedisExampleDatabase(client, key_prefix=REDIS_KEY_PREFIX)


def unreachable(spec: str) -> str | None:
    """Why the database `spec` names cannot be used now, or None if it can: a Redis server
    that does not answer, a client that is not installed, a directory that cannot be made."""
    try:
        target = parse(spec)
        database = example_database(spec)
    except DatabaseSpecError as error:
        return str(error)
    if isinstance(target, RedisAddress):
        from redis.exceptions import RedisError

        try:
            database.redis.ping()
        except RedisError as error:  # connection refused, authentication, protocol
            return f"--database {target}: the Redis server does not answer: {error}"
    elif isinstance(target, Path):
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return f"--database {target}: cannot create the directory: {error}"
    return None
