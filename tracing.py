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
import threading
from collections.abc import Callable, Sequence

TYPE_CHECKING = False  # typing's, without importing typing on a run's path (architecture)
if TYPE_CHECKING:
    import inspect
    from typing import Any, TypeVar

    from probe.recording import Recording

    F = TypeVar("F", bound=Callable[..., Any])

_context: contextvars.ContextVar[str | None] = contextvars.ContextVar("probe", default=None)
current_context = _context.get


class _State:
    """What records now, kept here for the decorator's check (one attribute read per call;
    probe.recording is too heavy to import at decoration). Read it with
    ``probe.recording.current()``; ``Recording.enter``/``leave`` set it."""

    def __init__(self) -> None:
        self.recording: Recording | None = None  # the innermost; None while nothing records
        self.stack: list[Recording] = []  # every Recording recording now, innermost last


state = _State()

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

    def entered(self, label: str | None = None) -> _Entered:
        """``with span.entered():`` runs the body in this span's context (or ``label``),
        counted where asked."""
        return _Entered(self, label or self.label)

    def _group(self) -> Any:
        group = getattr(self._local, "group", None)
        if group is None:
            from probe.engines.perf import open_region

            group = self._local.group = open_region(self.counters)
        return group


class _Entered:
    """One entry of a span (a class, not a generator: this runs on every decorated call)."""

    __slots__ = ("span", "label", "token", "recording", "group")

    def __init__(self, span: Span, label: str) -> None:
        self.span = span
        self.label = label
        self.group: Any = None

    def __enter__(self) -> None:
        span = self.span
        self.recording = state.recording
        self.token = _context.set(self.label)
        if span.counters and self.recording is not None and not getattr(span._local, "running", 0):
            self.group = span._group()  # the outermost entry on this thread counts
            span._local.running = True
            self.group.start()

    def __exit__(self, *exc: object) -> None:
        if self.group is not None:
            readings = self.group.stop()
            self.span._local.running = False
            self.recording.add_region(self.label, readings)
        _context.reset(self.token)


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
        import inspect  # not at import: every run imports this module, few decorate

        global decorated
        if isinstance(fn, staticmethod | classmethod):
            return type(fn)(decorate(fn.__func__))
        if inspect.isasyncgenfunction(fn):
            raise TypeError(f"probe.trace: {fn.__qualname__} is an async generator: not supported")
        decorated += 1
        span = Span(name or f"{fn.__module__}.{fn.__qualname__}", counters)
        if inspect.isgeneratorfunction(fn):

            def recorded(*args: Any, **kwargs: Any) -> Any:
                return _steps(fn(*args, **kwargs), span)

        elif inspect.iscoroutinefunction(fn):

            async def awaited(coro: Any) -> Any:
                with span.entered():
                    return await coro

            def recorded(*args: Any, **kwargs: Any) -> Any:
                return awaited(fn(*args, **kwargs))

        else:

            def recorded(*args: Any, **kwargs: Any) -> Any:
                with span.entered():
                    return fn(*args, **kwargs)

        traced = _wrapper(fn, recorded)
        traced.__probe_span__ = span  # type: ignore[attr-defined]
        if inspect.iscoroutinefunction(fn):
            if hasattr(inspect, "markcoroutinefunction"):  # 3.12+
                inspect.markcoroutinefunction(traced)
            else:  # 3.11: asyncio.iscoroutinefunction honours its own marker
                import asyncio.coroutines

                traced._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]
        return traced

    return decorate(func) if func is not None else decorate


def _wrapper(fn: Callable[..., Any], recorded: Callable[..., Any]) -> Callable[..., Any]:
    """A function with ``fn``'s very signature that calls ``fn`` while nothing records and
    ``recorded`` while something does. The same parameters, not ``*args, **kwargs``: packing
    them would cost three times the attribute check (see benchmarks/tracing.py)."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature to copy
        params = None
    if params is None:
        spec, call = "*args, **kwargs", "*args, **kwargs"
    else:
        spec, call = _parameters(params)
    source = (
        f"def {fn.__name__}({spec}):\n"
        "    if __probe_state.recording is None:\n"
        f"        return __probe_fn({call})\n"
        f"    return __probe_recorded({call})\n"
    )
    namespace = {"__probe_state": state, "__probe_fn": fn, "__probe_recorded": recorded}
    exec(compile(source, "<probe.trace>", "exec"), namespace)  # our template
    traced = namespace[fn.__name__]
    traced.__defaults__ = getattr(fn, "__defaults__", None)
    traced.__kwdefaults__ = getattr(fn, "__kwdefaults__", None)
    return functools.update_wrapper(traced, fn)


def _parameters(params: list[inspect.Parameter]) -> tuple[str, str]:
    """The parameter list of a def (defaults as placeholders, set after) and the call that
    passes each parameter on as it came."""
    import inspect

    kinds = inspect.Parameter
    spec: list[str] = []
    call: list[str] = []
    starred = False
    for i, p in enumerate(params):
        default = "=None" if p.default is not kinds.empty else ""
        if p.kind is kinds.POSITIONAL_ONLY:
            spec.append(p.name + default)
            call.append(p.name)
            if i + 1 == len(params) or params[i + 1].kind is not kinds.POSITIONAL_ONLY:
                spec.append("/")
        elif p.kind is kinds.POSITIONAL_OR_KEYWORD:
            spec.append(p.name + default)
            call.append(p.name)
        elif p.kind is kinds.VAR_POSITIONAL:
            spec.append("*" + p.name)
            call.append("*" + p.name)
            starred = True
        elif p.kind is kinds.KEYWORD_ONLY:
            if not starred:
                spec.append("*")
                starred = True
            spec.append(p.name + default)
            call.append(f"{p.name}={p.name}")
        else:
            spec.append("**" + p.name)
            call.append("**" + p.name)
    return ", ".join(spec), ", ".join(call)


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
