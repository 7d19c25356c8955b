"""Generators, comprehensions, lambdas, closures, decorators, classes, recursion, async."""
import asyncio
import functools


def gen(n):
    for i in range(n):
        if i % 2:
            yield i
    yield from range(2)


def memo(fn):
    cache = {}

    @functools.wraps(fn)
    def wrapper(x):
        if x not in cache:
            cache[x] = fn(x)
        return cache[x]
    return wrapper


@memo
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Shape:
    sides = 0

    def __init__(self, name):
        self.name = name

    @property
    def label(self):
        return f"{self.name}/{self.sides}"

    def __repr__(self):  # pragma: no cover
        return self.label


class Square(Shape):
    sides = 4

    def area(self, side):
        return side * side


async def fetch(i):
    await asyncio.sleep(0)
    if i > 1:
        return i * 2
    return 0


async def gather():
    return await asyncio.gather(*(fetch(i) for i in range(3)))


squares = [x * x for x in range(10) if x % 3]
evens = {x for x in gen(10)}
table = {k: v for k, v in zip("abc", range(3))
         if v}
key = sorted(["bb", "a"], key=lambda s: (len(s),
                                          s))
fib(20)
Square("sq").label
Square("sq").area(3)
asyncio.run(gather())
total = sum(x for x in range(5))
