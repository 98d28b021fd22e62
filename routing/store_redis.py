"""``LiveStore`` in Redis, shared by every server pointed at the same ``IVR_REDIS_URL``.

Keys (all under ``prefix``, default ``ivr:``):

- ``agent:<id>`` hash {presence, since, server}; ``calls:<id>`` list of the calls holding its lines;
  ``agents`` set of every agent id seen. ``reserve``/``release``/``set_presence`` are Lua scripts.
- ``queue`` sorted set of call ids, score ``priority * 1e10 + enqueued_at`` (ties: by call id);
  ``queue:entries`` hash call id → ``QueuedCall.to_json()``. ``enqueue``/``dequeue`` are Lua scripts.
- ``call:<id>`` hash: each top-level field of the record as JSON (so ``update_call`` merges with one
  atomic HSET and no JSON in Lua, and ``call_fields`` is a pipeline of HMGETs), with a TTL;
  ``swap_status`` is a Lua script comparing the ``status`` field's JSON.
- ``stream:<name>`` Redis Stream (one field ``e``: the event as JSON), ``MAXLEN ~ 1000``, expiring a
  day after its last event.
- ``servers`` sorted set server → ``now + ttl_s`` of its last heartbeat; ``session:<token hash>`` →
  agent id, with a TTL; ``failures:<key>`` hash {count, until} (``count_failure``, a Lua script),
  expiring with its window.
- ``audio:<channel>`` a pub/sub channel (PUBLISH; each subscription SUBSCRIBEs on a connection of its
  own from a pool that does not decode replies, so frames stay bytes). Redis pub/sub ignores the
  database number: the prefix alone keeps channels apart.

Redis that cannot be reached or does not answer in time raises ``StoreUnavailable`` (retryable):
connecting waits 1 s, a command 2 s, a blocking read its wait plus 2 s. A wrong or missing password
raises ``ConfigError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import ConfigError
from routing.store import (
    AUDIO_FRAMES,
    STREAM_MAXLEN,
    STREAM_TTL_S,
    AgentState,
    AudioFeed,
    Event,
    Presence,
    QueuedCall,
    StoreUnavailable,
)

CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 2.0
_RECORD = "\x00record"  # a field every call record has, so an empty record still exists
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, TimeoutError, OSError)

# Every agent script ends with the agent's state: {presence, since, server, calls}.
_STATE = """
local function state()
  local f = redis.call('HMGET', KEYS[1], 'presence', 'since', 'server')
  return {f[1], f[2], f[3], redis.call('LRANGE', KEYS[2], 0, -1)}
end
"""
# KEYS: agent hash, calls list, agents set. ARGV: agent id, presence, now, '1' to set the server, server.
_SET_PRESENCE = (
    _STATE
    + """
local old = redis.call('HGET', KEYS[1], 'presence') or 'offline'
local since = redis.call('HGET', KEYS[1], 'since') or '0'
if old ~= ARGV[2] then since = ARGV[3] end
redis.call('HSET', KEYS[1], 'presence', ARGV[2], 'since', since)
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'server', ARGV[5]) end
redis.call('SADD', KEYS[3], ARGV[1])
return state()
"""
)
# KEYS: agent hash, calls list. ARGV: call id, max concurrent, now. Returns 1 when the call got a line.
_RESERVE = """
if redis.call('HGET', KEYS[1], 'presence') ~= 'available' then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[1]) then return 0 end
local held = redis.call('LLEN', KEYS[2])
local lines = tonumber(ARGV[2])
if held >= lines then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
if held + 1 >= lines then redis.call('HSET', KEYS[1], 'presence', 'busy', 'since', ARGV[3]) end
return 1
"""
# KEYS: agent hash, calls list. ARGV: call id, now, '1' for wrap-up.
_RELEASE = (
    _STATE
    + """
if redis.call('LREM', KEYS[2], 0, ARGV[1]) == 0 then return state() end
local old = redis.call('HGET', KEYS[1], 'presence') or 'offline'
local new = old
if ARGV[3] == '1' and old ~= 'offline' then new = 'wrap_up' elseif old == 'busy' then new = 'available' end
if new ~= old then redis.call('HSET', KEYS[1], 'presence', new, 'since', ARGV[2]) end
return state()
"""
)
# KEYS: queue zset, entries hash. ARGV: call id, score, entry JSON. Returns the 1-based place.
_ENQUEUE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
"""
# KEYS: queue zset, entries hash. ARGV: call id. Returns the entry JSON or nil.
_DEQUEUE = """
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return entry
"""
# KEYS: call record hash. ARGV: field, JSON value, ... Returns the merged hash or nil.
_UPDATE_CALL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS: call record hash. ARGV: n, the n statuses expected (as JSON), then field, JSON value, ...
# Returns 1 when the status was one of them (and the fields were set), else 0.
_SWAP_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local status = redis.call('HGET', KEYS[1], 'status')
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  if status == ARGV[i] then
    if #ARGV > n + 1 then redis.call('HSET', KEYS[1], unpack(ARGV, n + 2)) end
    return 1
  end
end
return 0
"""

# KEYS: failures hash. ARGV: now, window's end (now + window), TTL in ms. Returns the new count.
_COUNT_FAILURE = """
local held = redis.call('HMGET', KEYS[1], 'count', 'until')
local count = tonumber(held[1]) or 0
if not held[2] or tonumber(held[2]) <= tonumber(ARGV[1]) then count = 0 end
count = count + 1
redis.call('HSET', KEYS[1], 'count', count, 'until', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return count
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _address(url: str) -> str:
    """``url`` without user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _client_address(client: aioredis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _client(url: str) -> aioredis.Redis:
    try:
        return aioredis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=COMMAND_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),  # a dropped pooled socket
        )
    except ValueError as err:
        raise ConfigError(f"IVR_REDIS_URL {_address(url)!r} is not a Redis URL (redis://host:port/db): {err}") from err


def _state(agent_id: str, reply: Sequence[Any]) -> AgentState:
    presence, since, server, calls = reply
    return AgentState(
        agent_id,
        Presence(_text(presence)) if presence is not None else Presence.OFFLINE,
        float(_text(since)) if since is not None else 0.0,
        tuple(_text(c) for c in calls),
        _text(server) if server is not None else None,
    )


def _record(fields: Mapping[Any, Any] | Sequence[Any] | None) -> dict[str, Any] | None:
    if not fields:
        return None
    if not isinstance(fields, Mapping):  # HGETALL through a script: a flat list
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    pairs = {_text(k): _text(v) for k, v in fields.items()}
    if _RECORD not in pairs:
        return None
    return {k: json.loads(v) for k, v in pairs.items() if k != _RECORD}


def _events(reply: Any) -> list[tuple[str, Event]]:
    """An XREAD reply (RESP2: [[stream, entries]]; RESP3: {stream: entries}) as (id, event)s."""
    if not reply:
        return []
    entries = next(iter(reply.values())) if isinstance(reply, Mapping) else reply[0][1]
    return [(_text(i), json.loads({_text(k): v for k, v in f.items()}["e"])) for i, f in entries]


class RedisStore:
    """``LiveStore`` in Redis. Give it a URL (``redis://[:password@]host:port/db``) or a
    ``redis.asyncio.Redis`` client (the store takes it over: ``close()`` closes it)."""

    def __init__(
        self, client_or_url: str | aioredis.Redis, prefix: str = "ivr:", *, stream_ttl_s: float = STREAM_TTL_S
    ) -> None:
        if isinstance(client_or_url, str):
            self._redis = _client(client_or_url)
            self.address = _address(client_or_url)
        else:
            self._redis = client_or_url
            self.address = _client_address(client_or_url)
        self._blocking: aioredis.Redis | None = None  # for XREAD BLOCK: no socket timeout of its own
        self._audio_pool: aioredis.ConnectionPool | None = None  # audio subscriptions: bytes, no socket timeout
        self._feeds: set[_RedisFeed] = set()  # subscriptions open now (closed first by ``close()``)
        self.prefix = prefix
        self._stream_ttl_s = stream_ttl_s
        self._set_presence = self._redis.register_script(_SET_PRESENCE)
        self._reserve = self._redis.register_script(_RESERVE)
        self._release = self._redis.register_script(_RELEASE)
        self._enqueue = self._redis.register_script(_ENQUEUE)
        self._dequeue = self._redis.register_script(_DEQUEUE)
        self._update_call = self._redis.register_script(_UPDATE_CALL)
        self._swap_status = self._redis.register_script(_SWAP_STATUS)
        self._count_failure = self._redis.register_script(_COUNT_FAILURE)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except AuthenticationError as err:  # a ConnectionError to redis-py, but trying again cannot help
            raise ConfigError(f"Redis at {self.address} refused the password in IVR_REDIS_URL: {what} failed") from err
        except _UNREACHABLE as err:
            detail = str(err) or type(err).__name__
            raise StoreUnavailable(f"Redis at {self.address} is unreachable: {what} failed ({detail})") from err

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _agent_keys(self, agent_id: str) -> list[str]:
        return [self._key("agent", agent_id), self._key("calls", agent_id)]

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless Redis answers."""
        with self._guard("PING"):
            await self._redis.ping()

    # -- agents ------------------------------------------------------------------------------------
    async def set_presence(
        self, agent_id: str, presence: Presence, now: float, server: str | None = None
    ) -> AgentState:
        keys = [*self._agent_keys(agent_id), self._key("agents")]
        args = [agent_id, Presence(presence).value, repr(float(now)), "0" if server is None else "1", server or ""]
        with self._guard(f"set_presence of agent {agent_id}"):
            reply = await self._set_presence(keys=keys, args=args)
        return _state(agent_id, reply)

    async def agent(self, agent_id: str) -> AgentState:
        with self._guard(f"reading agent {agent_id}"):
            return (await self._agent_states([agent_id]))[0]

    async def _agent_states(self, agent_ids: Sequence[str]) -> list[AgentState]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for agent_id in agent_ids:
                hash_key, calls_key = self._agent_keys(agent_id)
                pipe.hmget(hash_key, ["presence", "since", "server"])
                pipe.lrange(calls_key, 0, -1)
            replies = await pipe.execute()
        return [_state(a, [*replies[2 * i], replies[2 * i + 1]]) for i, a in enumerate(agent_ids)]

    async def agents(self) -> dict[str, AgentState]:
        with self._guard("reading the agents"):
            ids = sorted(_text(a) for a in await self._redis.smembers(self._key("agents")))  # type: ignore[misc]
            return {state.agent_id: state for state in await self._agent_states(ids)} if ids else {}

    async def reserve(self, agent_id: str, call_id: str, max_concurrent: int, now: float) -> bool:
        args: list[str | int] = [call_id, int(max_concurrent), repr(float(now))]
        with self._guard(f"reserving a line of agent {agent_id}"):
            won = await self._reserve(keys=self._agent_keys(agent_id), args=args)
        return int(won) == 1

    async def release(self, agent_id: str, call_id: str, now: float, *, wrap_up: bool = False) -> AgentState:
        args = [call_id, repr(float(now)), "1" if wrap_up else "0"]
        with self._guard(f"releasing a line of agent {agent_id}"):
            reply = await self._release(keys=self._agent_keys(agent_id), args=args)
        return _state(agent_id, reply)

    # -- the queue ---------------------------------------------------------------------------------
    def _queue_keys(self) -> list[str]:
        return [self._key("queue"), self._key("queue", "entries")]

    async def enqueue(self, entry: QueuedCall) -> int:
        score = repr(entry.priority * 1e10 + entry.enqueued_at)
        with self._guard("queueing a call"):
            place = await self._enqueue(keys=self._queue_keys(), args=[entry.call_id, score, entry.to_json()])
        return int(place)

    async def dequeue(self, call_id: str) -> QueuedCall | None:
        with self._guard("taking a call out of the queue"):
            text = await self._dequeue(keys=self._queue_keys(), args=[call_id])
        return None if text is None else QueuedCall.from_json(text)

    async def queue(self) -> list[QueuedCall]:
        order_key, entries_key = self._queue_keys()
        with self._guard("reading the queue"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrange(order_key, 0, -1)
                pipe.hgetall(entries_key)
                order, entries = await pipe.execute()
        entries = {_text(k): v for k, v in entries.items()}
        return [QueuedCall.from_json(entries[c]) for c in map(_text, order) if c in entries]

    async def position(self, call_id: str) -> int | None:
        with self._guard("reading a queue position"):
            rank: Any = await self._redis.zrank(self._queue_keys()[0], call_id)
        return None if rank is None else int(rank) + 1

    # -- calls -------------------------------------------------------------------------------------
    async def save_call(self, call_id: str, record: Mapping[str, Any], ttl_s: float) -> None:
        key = self._key("call", call_id)
        fields = {k: json.dumps(v, ensure_ascii=False) for k, v in json.loads(json.dumps(dict(record))).items()}
        with self._guard("saving a call record"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if ttl_s > 0:
                    pipe.hset(key, mapping={_RECORD: "1", **fields})
                    pipe.pexpire(key, _ms(ttl_s))
                await pipe.execute()

    async def update_call(self, call_id: str, changes: Mapping[str, Any]) -> Mapping[str, Any] | None:
        args: list[str] = []
        for k, v in json.loads(json.dumps(dict(changes))).items():
            args += [k, json.dumps(v, ensure_ascii=False)]
        with self._guard("updating a call record"):
            reply = await self._update_call(keys=[self._key("call", call_id)], args=args)
        return _record(reply)

    async def swap_status(self, call_id: str, expect: Sequence[str], changes: Mapping[str, Any]) -> bool:
        args: list[str] = [str(len(expect)), *(json.dumps(str(s), ensure_ascii=False) for s in expect)]
        for k, v in json.loads(json.dumps(dict(changes))).items():
            args += [k, json.dumps(v, ensure_ascii=False)]
        with self._guard("swapping a call's status"):
            won = await self._swap_status(keys=[self._key("call", call_id)], args=args)
        return int(won) == 1

    async def load_call(self, call_id: str) -> Mapping[str, Any] | None:
        with self._guard("loading a call record"):
            fields = await self._redis.hgetall(self._key("call", call_id))  # type: ignore[misc]
        return _record(fields)

    async def call_fields(self, call_ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not call_ids:
            return {}
        names = [_RECORD, *fields]
        with self._guard("reading fields of call records"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for call_id in call_ids:
                    pipe.hmget(self._key("call", call_id), names)
                replies = await pipe.execute()
        found: dict[str, dict[str, Any]] = {}
        for call_id, (exists, *values) in zip(call_ids, replies, strict=True):
            if exists is not None:
                found[call_id] = {f: json.loads(_text(v)) for f, v in zip(fields, values, strict=True) if v is not None}
        return found

    # -- streams -----------------------------------------------------------------------------------
    async def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        key = self._key("stream", stream)
        fields = {"e": json.dumps(dict(event), ensure_ascii=False)}
        with self._guard("publishing an event"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(key, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
                pipe.pexpire(key, _ms(self._stream_ttl_s))
                event_id, _ = await pipe.execute()
        return _text(event_id)

    async def read(self, stream: str, after: str = "0", timeout_s: float = 0.0) -> list[tuple[str, Event]]:
        key = self._key("stream", stream)
        try:
            with self._guard("reading a stream"):
                if timeout_s <= 0:
                    reply = await self._redis.xread({key: after})
                else:
                    async with asyncio.timeout(timeout_s + COMMAND_TIMEOUT_S):
                        reply = await self._blocking_client().xread({key: after}, block=_ms(timeout_s))
        except ResponseError as err:
            raise ValueError(f"not a stream id: {after!r} ({err})") from err
        return _events(reply)

    def _blocking_client(self) -> aioredis.Redis:
        if self._blocking is None:
            pool = self._redis.connection_pool
            kwargs = {**pool.connection_kwargs, "socket_timeout": None}
            blocking_pool = aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
            self._blocking = aioredis.Redis(connection_pool=blocking_pool)
        return self._blocking

    # -- audio -------------------------------------------------------------------------------------
    async def send_audio(self, channel: str, pcm: bytes) -> None:
        with self._guard("sending audio"):
            await self._redis.publish(self._key("audio", channel), bytes(pcm))

    def audio(self, channel: str, max_frames: int = AUDIO_FRAMES) -> AudioFeed:
        return _RedisFeed(self, channel, max_frames)

    def _pubsub(self) -> PubSub:
        """A pub/sub on a connection of its own that hands frames back as bytes."""
        if self._audio_pool is None:
            pool = self._redis.connection_pool
            kwargs = {**pool.connection_kwargs, "socket_timeout": None, "decode_responses": False}
            self._audio_pool = aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        return PubSub(self._audio_pool, ignore_subscribe_messages=True)

    # -- servers and sessions ---------------------------------------------------------------------
    async def heartbeat(self, server: str, now: float, ttl_s: float) -> None:
        key = self._key("servers")
        with self._guard("sending a heartbeat"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(key, {server: now + ttl_s})
                pipe.zremrangebyscore(key, "-inf", now - 86400)  # servers gone for a day
                await pipe.execute()

    async def servers_alive(self, now: float) -> set[str]:
        with self._guard("reading the servers alive"):
            names: Any = await self._redis.zrangebyscore(self._key("servers"), f"({now!r}", "+inf")
        return {_text(n) for n in names}

    async def open_session(self, token_hash: str, agent_id: str, ttl_s: float) -> None:
        key = self._key("session", token_hash)
        with self._guard("opening a session"):
            if ttl_s > 0:
                await self._redis.set(key, agent_id, px=_ms(ttl_s))
            else:
                await self._redis.delete(key)

    async def session_agent(self, token_hash: str) -> str | None:
        with self._guard("reading a session"):
            agent_id = await self._redis.get(self._key("session", token_hash))
        return None if agent_id is None else _text(agent_id)

    async def close_session(self, token_hash: str) -> None:
        with self._guard("closing a session"):
            await self._redis.delete(self._key("session", token_hash))

    async def count_failure(self, key: str, now: float, window_s: float) -> int:
        args: list[str | int] = [repr(now), repr(now + window_s), _ms(window_s)]
        with self._guard("counting a failure"):
            count: Any = await self._count_failure(keys=[self._key("failures", key)], args=args)
        return int(count)

    async def failures(self, key: str, now: float) -> tuple[int, float]:
        with self._guard("reading failures"):
            count, until = await self._redis.hmget(self._key("failures", key), ["count", "until"])
        if count is None or until is None or float(until) <= now:
            return 0, 0.0
        return int(count), float(until) - now

    async def clear_failures(self, key: str) -> None:
        with self._guard("clearing failures"):
            await self._redis.delete(self._key("failures", key))

    async def close(self) -> None:
        for feed in list(self._feeds):  # a reader blocked on its connection would hold the pool's close for ever
            await feed.close()
        with self._guard("closing the connections"):
            if self._blocking is not None:
                await self._blocking.aclose(close_connection_pool=True)
            if self._audio_pool is not None:
                await self._audio_pool.aclose()
            await self._redis.aclose(close_connection_pool=True)


class _RedisFeed(AudioFeed):
    """An ``AudioFeed`` on a Redis SUBSCRIBE: a reader task moves each message into the feed's queue."""

    def __init__(self, store: RedisStore, channel: str, max_frames: int) -> None:
        super().__init__(channel, max_frames)
        self._store = store
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None

    async def _subscribe(self) -> None:
        pubsub = self._store._pubsub()
        try:
            with self._store._guard(f"subscribing to audio {self.channel}"):
                await pubsub.subscribe(self._store._key("audio", self.channel))
        except BaseException:
            await pubsub.aclose()
            raise
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._read(pubsub), name=f"audio-feed-{self.channel}")
        self._store._feeds.add(self)

    async def _read(self, pubsub: PubSub) -> None:
        try:
            with self._store._guard(f"receiving audio {self.channel}"):
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and message.get("type") == "message":
                        self.put(bytes(message["data"]))
        except StoreUnavailable as err:
            self.fail(err)

    async def _unsubscribe(self) -> None:
        self._store._feeds.discard(self)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(*_UNREACHABLE):
                await self._pubsub.aclose()  # its connection goes back to the pool closed: no UNSUBSCRIBE needed


async def connect(url: str, prefix: str = "ivr:") -> RedisStore:
    """A ``RedisStore`` on ``url`` that has answered PING; ``StoreUnavailable`` when Redis is unreachable,
    ``ConfigError`` when the URL is not Redis's or Redis refuses its password."""
    store = RedisStore(url, prefix)
    try:
        await store.ping()
    except StoreUnavailable as err:
        await store.close()
        raise StoreUnavailable(f"{err}; start Redis there or set IVR_REDIS_URL") from err.__cause__
    except ConfigError:
        await store.close()
        raise
    return store
