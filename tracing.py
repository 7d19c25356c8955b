"""``@probe.trace``: mark the functions whose call trees a session records.

A decorated function costs one attribute check per call while no session is
recording. While one is, each call runs inside a *span*: a context named
after the function (a ContextVar, so threads and asyncio tasks each have
their own) that every event and count of its call tree carries, and,
where counters were asked for, a perf_event_open group switched on and off
around the call on the calling thread. Recursive calls count once, in the
outermost call.

Generators are measured step by step (each ``next``/``send`` is a span), so
what runs between steps is not theirs; coroutines from start to end, so
their counters include other tasks that ran on the thread while they
waited.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from probe.recording import Session

F = TypeVar("F", bound=Callable[..., Any])

_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("probe", default=None)
current_context = _context.get


class _State:
    """The innermost recording session; None while nothing records (the decorator's check)."""

    session: Session | None = None


state = _State()
stack: list[Session] = []  # the sessions recording now, innermost last

# Analyses the decorated functions ask for: a session opened without analyses of its own
# records these, in the decorated call trees only.
requested: list[str] = []
decorated = 0  # how many functions are decorated: their calls are contexts that change often


class Span:
    """A named context, with region counters if asked for, entered around a piece of work."""

    def __init__(self, label: str, counters: Sequence[str] = ()) -> None:
        self.label = label
        self.counters = list(counters)
        self._local = threading.local()  # per thread: its counter group, and whether it runs

    @contextmanager
    def entered(self, label: str | None = None) -> Iterator[None]:
        """Run the body in this span's context (or ``label``), counting it where asked."""
        session = state.session
        token = _context.set(label or self.label)
        group = self._group() if self.counters and session is not None else None
        outermost = group is not None and not getattr(self._local, "running", False)
        if outermost:
            self._local.running = True
            group.start()
        try:
            yield
        finally:
            if outermost:
                readings = group.stop()
                self._local.running = False
                session.add_region(label or self.label, readings)
            _context.reset(token)

    def _group(self) -> Any:
        group = getattr(self._local, "group", None)
        if group is None:
            from probe.engines.perf import open_region

            group = self._local.group = open_region(self.counters)
        return group


def trace(
    func: F | None = None,
    *,
    analysis: str | Sequence[str] | None = None,
    counters: Sequence[str] = (),
    name: str | None = None,
) -> Any:
    """Decorate a function, method, generator or coroutine function so that sessions record
    its calls: ``@probe.trace`` or ``@probe.trace(analysis=[...], counters=[...])``.

    ``analysis``: what a session opened without analyses records in this call tree;
    ``counters``: perf events counted around each call (the ``counters`` table, region =
    ``name``, by default the function's qualified name).
    """
    if isinstance(analysis, str):
        analysis = [analysis]
    if counters:
        from probe.engines.perf.region import check_events

        check_events(list(counters))  # a misspelt event fails at import, not mid-run
    for a in analysis or ():
        if a not in requested:
            requested.append(a)

    def decorate(fn: Any) -> Any:
        global decorated
        if isinstance(fn, staticmethod | classmethod):
            return type(fn)(decorate(fn.__func__))
        decorated += 1
        if inspect.isasyncgenfunction(fn):
            raise TypeError(f"probe.trace: {fn.__qualname__} is an async generator: not supported")
        span = Span(name or f"{fn.__module__}.{fn.__qualname__}", counters)
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, span)
        if inspect.iscoroutinefunction(fn):
            return _wrap_coroutine(fn, span)

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            if state.session is None:
                return fn(*args, **kwargs)
            with span.entered():
                return fn(*args, **kwargs)

        traced.__probe_span__ = span  # type: ignore[attr-defined]
        return traced

    return decorate(func) if func is not None else decorate


def _wrap_generator(fn: Callable[..., Any], span: Span) -> Callable[..., Any]:
    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        gen = fn(*args, **kwargs)
        if state.session is None:
            return gen
        return _steps(gen, span)

    traced.__probe_span__ = span  # type: ignore[attr-defined]
    return traced


def _steps(gen: Any, span: Span) -> Any:
    """Drive ``gen``, each step inside the span; sends, throws and close pass through."""
    value: Any = None
    error: BaseException | None = None
    while True:
        with span.entered():
            try:
                item = gen.throw(error) if error is not None else gen.send(value)
            except StopIteration as stop:
                return stop.value
        error = None
        try:
            value = yield item
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as e:  # noqa: BLE001 - thrown into the generator, as without us
            error = e


def _wrap_coroutine(fn: Callable[..., Any], span: Span) -> Callable[..., Any]:
    async def awaited(coro: Any) -> Any:
        with span.entered():
            return await coro

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        coro = fn(*args, **kwargs)
        if state.session is None:
            return coro
        return awaited(coro)

    traced.__probe_span__ = span  # type: ignore[attr-defined]
    if hasattr(inspect, "markcoroutinefunction"):  # 3.12+
        inspect.markcoroutinefunction(traced)
    return traced
