"""Perfetto's native trace format (protobuf), as ui.perfetto.dev opens it: a run's calls as
TrackEvent slices on a track, its other events as instants, streamed; its samples as a flame
chart per thread with a counter of samples per 100 ms, and its perf counters as counter
tracks, in real time (the events' time is their order: see Timeline).

Written by hand, not with the ``perfetto`` package's protos: those build a Python object per
packet (~0.2 M packets/s), where a run may have 10^8 events. Every event packet here has the
same few fields, so a batch is encoded at once with numpy, as a matrix of bytes (a row a
packet; see _varints). The tests parse the file back with the package's
``perfetto_trace_pb2``.

A packet: timestamp (field 8, ns: an event's ``seq`` times 1000), track_event (11: type,
track_uuid, name_iid), trusted_packet_sequence_id (10) and sequence_flags (13: it needs the
sequence's interned names). The first packets describe the process and thread tracks and
intern every site's name (InternedData.event_names). The samples and counters come after,
a packet at a time, on a sequence of their own with names inline.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import singledispatch
from typing import Any

from probe.analyses.trace import Timeline
from probe.engines.wasm.binary import enc_u32 as _varint  # a protobuf varint is an unsigned LEB128

_SEQUENCE, _SAMPLES_SEQUENCE = 1, 2  # the events' (names interned), the samples'
_PROCESS, _THREAD = 1, 2  # track uuids of the events: a process, its threads from 2 on
_SAMPLED = 1 << 32  # the samples' and counters' track uuids from here
_CLEARED, _NEEDS_STATE = 1, 2  # TracePacket.sequence_flags
_BEGIN, _END, _INSTANT, _COUNTER = 1, 2, 3, 4  # TrackEvent.type


@singledispatch
def render(result: object) -> Any:
    raise NotImplementedError(type(result).__name__)


@render.register
def _(result: Timeline) -> Iterator[bytes]:
    import numpy as np

    yield _preamble(result)
    for seq, site, types, track in result.paired():
        yield _packets(seq * np.uint64(1000), types, site + 1, track + _THREAD)
    for track, n in result.open.items():  # calls still open when the run ended: closed there
        if n:
            end = np.full(n, (result.last + 1) * 1000, np.uint64)
            ones = np.ones(n, np.uint64)
            yield _packets(end, np.full(n, _END, np.uint8), ones, ones * (track + _THREAD))
    yield _samples(result)
    yield _counters(result)


def _samples(result: Timeline) -> bytes:
    """The samples, in real time: a process track per sampled process, a thread track per
    thread with its stacks as slices (a flame chart), and a counter track per thread of its
    samples per 100 ms. Few packets (a sampling rate's worth a second): one at a time."""
    out = []
    processes: dict[int, int] = {}  # pid -> track uuid
    threads: dict[tuple[int, str], int] = {}
    for process, thread, tid, name in result.threads():
        if process not in processes:
            uuid = processes[process] = _SAMPLED + len(processes)
            about = _field(1, _varint(process), ld=False) + _field(6, result.target.encode())
            out.append(_track(uuid, _field(3, about)))
        uuid = threads[(process, thread)] = _SAMPLED + 1000 + len(threads)
        about = _field(1, _varint(process), ld=False) + _field(2, _varint(tid), ld=False)
        out.append(_track(uuid, _field(4, about + _field(5, name.encode())), processes[process]))
        counter = _field(2, f"samples per 100 ms: {thread}".encode()) + _field(8, b"")
        out.append(_track(uuid + 1000, counter, processes[process]))
    for process, thread, slices in result.flames():
        track = threads[(process, thread)]
        out += [_event(at, track, kind, name=name) for at, kind, name in slices]
    for process, thread, counts in result.activity():
        track = threads[(process, thread)] + 1000
        out += [_event(at, track, _COUNTER, value=n) for at, n in counts]
    return b"".join(out)


def _counters(result: Timeline) -> bytes:
    """The run's perf counters: a counter track each, from 0 at the run's start to the
    counter's value at its end (probe counts them over the whole run)."""
    out = []
    end = round(result.wall_s * 1e9)
    for k, (event, value, unit) in enumerate(result.counters):
        uuid = _SAMPLED + 3000 + k
        counter = _field(8, _field(6, unit.encode()) if unit else b"")
        out.append(_track(uuid, _field(2, event.encode()) + counter, _PROCESS))
        out += [_event(0, uuid, _COUNTER, real=0.0), _event(end, uuid, _COUNTER, real=value)]
    return b"".join(out)


def _track(uuid: int, about: bytes, parent: int | None = None) -> bytes:
    """A track descriptor packet: ``about`` is its process, thread or name and counter."""
    up = _field(5, _varint(parent), ld=False) if parent is not None else b""
    return _field(1, _field(60, _field(1, _varint(uuid), ld=False) + up + about))


def _event(
    at: int,
    track: int,
    kind: int,
    *,
    name: str | None = None,
    value: int | None = None,
    real: float | None = None,
) -> bytes:
    """A TrackEvent packet of the samples' sequence (names inline, not interned)."""
    import struct

    event = _field(9, _varint(kind), ld=False) + _field(11, _varint(track), ld=False)
    if name is not None:
        event += _field(23, name.encode())
    if value is not None:
        event += _field(30, _varint(value), ld=False)
    if real is not None:
        event += _varint(44 << 3 | 1) + struct.pack("<d", real)  # double_counter_value
    packet = _field(8, _varint(at), ld=False) + _field(11, event)
    return _field(1, packet + _field(10, _varint(_SAMPLES_SEQUENCE), ld=False))


def _varints(values: Any) -> Any:
    """Each value as a varint of the batch's widest length: rows of bytes, all one width.
    A varint may carry more groups than it needs (0x80 continuations over zeros): valid on
    the wire, and every parser reads it. It keeps every packet of a batch the same shape,
    so a batch is a matrix filled column by column; minimal lengths would need a scatter
    per field, three times slower."""
    import numpy as np

    v = np.asarray(values, np.uint64)
    top = int(v.max()) if len(v) else 0
    width = max(1, (top.bit_length() + 6) // 7)
    out = np.empty((len(v), width), np.uint8)
    for j in range(width):
        group = (v >> np.uint64(7 * j)) & np.uint64(0x7F)
        out[:, j] = group | np.uint64(0x80 if j < width - 1 else 0)
    return out


def _packets(ts: Any, types: Any, iids: Any, tracks: Any) -> bytes:
    """The packets of events at ``ts`` (ns) of ``types``, named ``iids``, on ``tracks``."""
    import numpy as np

    n = len(ts)
    ts_bytes, iid_bytes, track_bytes = _varints(ts), _varints(iids), _varints(tracks)
    # type (2 bytes), track uuid (1 + varint), name_iid (1 + varint)
    event = 4 + track_bytes.shape[1] + iid_bytes.shape[1]
    payload = 1 + ts_bytes.shape[1] + 2 + event + 4  # timestamp, track_event, seq id, flags
    columns = [
        np.array([0x0A, payload, 0x40], np.uint8),
        ts_bytes,
        np.array([0x5A, event, 0x48], np.uint8),
        types.astype(np.uint8)[:, None],
        np.array([0x58], np.uint8),
        track_bytes,
        np.array([0x50], np.uint8),
        iid_bytes,
        np.array([0x50, _SEQUENCE, 0x68, _NEEDS_STATE], np.uint8),
    ]
    width = sum(c.shape[-1] for c in columns)
    out = np.empty((n, width), np.uint8)
    at = 0
    for c in columns:
        out[:, at : at + c.shape[-1]] = c
        at += c.shape[-1]
    return out.tobytes()


def _preamble(result: Timeline) -> bytes:
    """The events' tracks (a process, a thread) and every site's name, interned."""
    if not result.sites:
        return b""  # samples only (a hotpaths report)
    names = result.names()
    interned = b"".join(
        _field(2, _field(1, _varint(sid + 1), ld=False) + _field(2, name.encode()))
        for sid, name in enumerate(names)
    )
    process = _field(
        60,
        _field(1, _varint(_PROCESS), ld=False)
        + _field(3, _field(1, _varint(1), ld=False) + _field(6, result.target.encode())),
    )
    threads = []
    for k, (tid, shown) in enumerate(zip(result.event_threads, result.event_tids(), strict=True)):
        name = f"events, in order (1 us each){f': thread {tid}' if tid else ''}"  # 0: Wasm's
        about = _field(1, _varint(1), ld=False) + _field(2, _varint(shown), ld=False)
        threads.append(
            _field(
                60,
                _field(1, _varint(_THREAD + k), ld=False)
                + _field(5, _varint(_PROCESS), ld=False)
                + _field(4, about + _field(5, name.encode())),
            )
        )
    state = (
        _field(12, interned)
        + _field(10, _varint(_SEQUENCE), ld=False)
        + _field(13, _varint(_CLEARED | _NEEDS_STATE), ld=False)
    )
    return b"".join(_field(1, packet) for packet in (process, *threads, state))


def _field(number: int, value: bytes, ld: bool = True) -> bytes:
    """A length-delimited field (``ld``), or a varint one whose value is already encoded."""
    if not ld:
        return _varint(number << 3) + value
    return _varint(number << 3 | 2) + _varint(len(value)) + value
