"""Control flow in every shape a counter placed on an edge must survive: loops with break,
continue and else, match, yield from with throw and close, async, with and finally, and
exceptions out of the middle of straight runs of lines."""
import asyncio


def sub():
    try:
        x = yield 1
        yield x
    except KeyError:
        yield "caught"
    finally:
        cleanup = True


def deleg():
    result = yield from sub()
    return result


def thrown():
    g = deleg()
    first = next(g)
    got = g.throw(KeyError("k"))
    g.close()
    return first, got


def abandoned():
    for k in range(5):
        yield k
        after = k


def loops(n):
    total = 0
    for i in range(n):
        if i == 7:
            break
        if i % 2:
            continue
        total += i
    else:
        total = -1
    j = 0
    while j < n:
        j += 3
        if j > 100:
            break
    else:
        total += 1
    return total


def matcher(v):
    match v:
        case 0:
            return "zero"
        case [a, b]:
            return a + b
        case {"k": k}:
            return k
        case _:
            return None


def mid_raise(items):
    out = 0
    for it in items:
        try:
            a = 1
            b = 10 // it
            c = a + b
            out += c
        except ZeroDivisionError:
            out -= 1
        finally:
            out += 100
    return out


def returns_in_finally(x):
    try:
        if x:
            return "early"
        y = 1
    finally:
        z = 2
    return y + z


class Ctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is KeyError


def with_raise(flag):
    with Ctx():
        a = 1
        if flag:
            raise KeyError(flag)
        b = 2
    return a


async def tick(n):
    await asyncio.sleep(0)
    return n * 2


async def main():
    total = 0
    for n in range(3):
        total += await tick(n)
    results = await asyncio.gather(tick(5), tick(6))
    async for v in agen():
        total += v
    return total + sum(results)


async def agen():
    for k in range(3):
        yield k
        await asyncio.sleep(0)


print(thrown())
g = abandoned()
print(next(g), next(g))
print([loops(n) for n in (3, 10)])
print([matcher(v) for v in (0, [1, 2], {"k": 3}, "x")])
print(mid_raise([1, 0, 2, 0, 5]))
print(returns_in_finally(True), returns_in_finally(False))
print(with_raise(False), with_raise(True))
print(asyncio.run(main()))
print(sum(x for x in range(10) if x % 3), [1 / (x - 2) for x in range(2) if x])
try:
    [10 // x for x in (1, 0)]
except ZeroDivisionError:
    print("zero")
