"""The host side of a probed module while it runs: callback points switched by guard
bytes, the event ring taken into Arrow batches, live probe insertion and removal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from probe.engines import Recorder
from probe.errors import UsageError
from probe.probes import Probe, ProbeSet, SiteEvent, Switchboard, site_matches

from .binary import Module
from .emit import EVENT_BYTES, EVENT_CAPACITY
from .rewrite import (
    CURSOR_EXPORT,
    EVENTS_EXPORT,
    FLUSH_IMPORT,
    GUARDS_EXPORT,
    HIT_IMPORT,
    PATHS_EXPORT,
    RANGES_EXPORT,
    STACK_EXPORT,
    Result,
)

# One event in the ring, as the event writer stores it.
EVENT_DTYPE = [("value", "<i8"), ("site", "<i4"), ("pad", "<i4")]


class Host:
    """The host side of a probed module: callback points, the event ring, live probes."""

    def __init__(
        self, probes: ProbeSet, prepared: Result, module: Module, unit: str, recorder: Recorder
    ) -> None:
        self.prepared = prepared
        self.module = module
        self.unit = unit
        self.recorder = recorder
        self.store = None
        self.guards = None  # numpy view of the guard memory
        self.ring = None  # numpy view of the event ring
        self.cursor = None
        self.ranges = None  # numpy (sites, 2) view: lowest and highest operand per site
        self.seq = 0
        self.names: dict[int, str] = {}
        self._kinds = None
        self.board = Switchboard(self._resolve, self._switch)
        self._initial = probes.callback_probes()
        self.sampling = probes.sampling_for("stack")
        self.sampler = None  # reads the shadow stack while the guest runs
        self.path_memory = None  # numpy bytes view of the path counters
        self.began = time.time()

    def imports(self) -> dict[str, tuple[list[str], Callable[..., None]]]:
        found = {}
        if self.prepared.calls_host:
            found[HIT_IMPORT[1]] = (["i32", "i64"], self.hit)
        if self.prepared.events:
            found[FLUSH_IMPORT[1]] = ([], self.flush)
        return found

    def attach(self, store: Any, exports: Any) -> None:
        """Called once the instance exists, before any guest code runs."""
        self.store = store
        p = self.prepared
        if not (p.calls_host or p.events or p.ranges or p.paths or p.stack):
            return  # flags and counts only: nothing to view (and no numpy to import)
        import numpy as np

        if self.prepared.calls_host:
            self.guards = view(store, exports[GUARDS_EXPORT], np.uint8)
            for probe in self._initial:
                if probe.callback is not None:
                    self.board.insert(probe)
        if self.prepared.events:
            self.ring = view(store, exports[EVENTS_EXPORT], EVENT_DTYPE)
            self.cursor = exports[CURSOR_EXPORT]
        if self.prepared.ranges:
            self.ranges = view(store, exports[RANGES_EXPORT], np.uint64).reshape(-1, 2)
            self.ranges[:, 0] = np.iinfo(np.uint64).max  # lowest seen: none yet
        if self.prepared.paths:
            self.path_memory = path_memory(store, exports, self.prepared)
        if self.prepared.stack and self.sampling is not None:
            from .sampler import ShadowSampler

            stack = view(store, exports[STACK_EXPORT], np.uint32)
            self.sampler = ShadowSampler(
                stack, self.sampling.rate, self.module.func_name, self.unit, self.began
            )
            self.sampler.start()

    def paths(self) -> None:
        """Write the path counts (the paths table), and say which functions were too big."""
        if self.path_memory is not None:
            from .tables import paths_columns

            columns = paths_columns(self.prepared, self.path_memory)
            if columns["path"]:
                self.recorder.write("paths", columns)
        if self.prepared.unprofiled:
            from probe.storage.spool import warn

            from .paths import PATH_LIMIT

            names = ", ".join(self.module.func_name(f) for f, _ in self.prepared.unprofiled[:5])
            more = len(self.prepared.unprofiled) - 5
            warn(
                f"no path profile of {len(self.prepared.unprofiled)} functions with more than "
                f"{PATH_LIMIT:,} paths: {names}" + (f" and {more} more" if more > 0 else "")
            )

    def samples(self) -> None:
        """Stop sampling and write what was sampled (samples and stacks)."""
        sampler, self.sampler = self.sampler, None
        if sampler is not None:
            sampler.stop().write(self.recorder)

    # -- callback points --------------------------------------------------------

    def _site_kinds(self):  # numpy array of kind names
        import numpy as np

        if self._kinds is None:
            self._kinds = np.array(self.prepared.sites.kind, dtype=object)
        return self._kinds

    def _resolve(self, probe: Probe) -> list[int]:
        sites, pattern = self.prepared.sites, probe.site
        assert pattern is not None
        kind = probe.event  # site kinds are the event class names
        return [
            i
            for i in range(len(sites))
            if sites.kind[i] == kind
            and site_matches(
                pattern,
                kind,
                self.unit,
                self._name(sites.func[i]),
                offset=sites.offset[i],
                target=sites.target[i],
            )
        ]

    def _switch(self, event: str, site_ids, on: bool) -> None:  # ids or None
        if self.guards is None:
            raise UsageError(f"no callback points on {event} sites in this run")
        if site_ids is None:
            mask = self._site_kinds() == event
            if not on:  # sites with local probes of their own stay on
                keep = [i for i in range(len(mask)) if mask[i] and self.board.active(event, i)]
                self.guards[: len(mask)][mask] = 0
                self.guards[keep] = 1
            else:
                self.guards[: len(mask)][mask] = 1
            return
        for i in site_ids:
            self.guards[i] = 1 if on else int(self.board.active(event, i))

    def _name(self, func: int) -> str:
        name = self.names.get(func)
        if name is None:
            name = self.names[func] = self.module.func_name(func)
        return name

    def hit(self, site: int, value: int) -> None:
        sites = self.prepared.sites
        kind = sites.kind[site]
        self.board.fire(
            kind,
            site,
            SiteEvent(
                site,
                kind,
                self._name(sites.func[site]),
                offset=sites.offset[site],
                unit=self.unit,
                value=value if site in sites.valued else None,
                probes=self.board,
            ),
        )

    # -- the event ring ---------------------------------------------------------

    def flush(self, count: int = EVENT_CAPACITY) -> None:
        """Move ``count`` events from the ring to the run's events table, as one batch."""
        import numpy as np

        if not count:
            return
        events = self.ring[:count]
        self.recorder.append(
            "events",
            {
                "seq": np.arange(self.seq, self.seq + count, dtype=np.int64),
                "site_id": events["site"].astype(np.int64),
                "value": events["value"].copy(),
            },
        )
        self.seq += count

    def finish(self) -> None:
        """Take the events still in the ring, however the run ended."""
        if self.ring is not None and self.store is not None:
            self.flush(self.cursor.value(self.store) // EVENT_BYTES)


def path_memory(store: Any, exports: Any, prepared: Result) -> Any:
    """A byte view of the path counters, with the br_table value tables written in: what must
    be there before the guest runs."""
    import numpy as np

    memory = view(store, exports[PATHS_EXPORT], np.uint8)
    for at, values in prepared.path_tables:
        memory[at : at + 4 * len(values)] = np.asarray(values, "<i4").view(np.uint8)
    return memory


def view(store: Any, memory: Any, dtype: Any) -> Any:
    """A numpy view of a memory the guest never grows (so its address stays put)."""
    import ctypes

    import numpy as np

    size = memory.data_len(store)
    buf = (ctypes.c_ubyte * size).from_address(ctypes.addressof(memory.data_ptr(store).contents))
    return np.frombuffer(buf, dtype=dtype)
