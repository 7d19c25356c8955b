"""Odd corners: pragmas, docstrings, multi-line headers, async loops, finally with return."""
import asyncio


def documented():
    """A docstring
    over lines."""
    x = 1
    return x


def excluded(flag):
    if flag:  # pragma: no cover
        return "never measured"
    return "measured"


def multi(a,
          b):
    if (a and
            b):
        return [
            a,
            b,
        ]
    while (a
           > 10):
        a -= 1
    return a


def finally_return(items):
    for item in items:
        try:
            if item:
                return item
        finally:
            item = None
    return None


class Ticker:
    def __init__(self, n):
        self.n = n

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.n <= 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n


class Ctx:
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


async def consume():
    seen = []
    async with Ctx():
        async for v in Ticker(3):
            if v == 1:
                continue
            seen.append(v)
    return seen


def nested_funcs(n):
    def inner(k):
        return k * 2 if k else -1

    lam = lambda z: (z  # noqa: E731
                     + 1)
    return [inner(i) + lam(i) for i in range(n)]


documented()
excluded(False)
multi(1, 0)
multi(20, 0)
multi(1, 2)
finally_return([0, 0, 5])
finally_return([])
asyncio.run(consume())
nested_funcs(3)
x = 5; y = 6  # noqa: E702
if x:  # pragma: no cover
    y = 7


def witnesses(n, items):
    if n > 3:
        return "big"
    total = 0
    for i in items:
        total += i
    found = None
    for i in items:
        if i == n:
            found = i
            break
    while n > 0:
        n -= 1
    if n:
        value = (
            total
            + 1)
    else:
        value = [
            total]
    try:
        if total:
            raise ValueError(total)
    except ValueError:
        for k in items:
            if k:
                break
        else:
            k = None
    return found, value


def matcher(v):
    match v:
        case int():
            return "int"
        case str():
            return "str"
    return "other"


for args in ((5, []), (2, [1, 2]), (0, []), (1, [0, 0])):
    witnesses(*args)
matcher(1)
matcher(None)
