def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)


def evens(k):
    for i in range(k):
        if i % 2 == 0:
            yield i


def collect(k):
    out = list(evens(k))
    return out


def spin(n):
    s = 0
    for i in range(n):
        s += i
    return s


def mutate():
    xs = [0, 0, 0]
    xs[1] = 1
    xs.append(5)
    d = {"a": 1}
    d["b"] = 2
    del d["a"]
    return xs, d


class Loud:
    def __repr__(self):
        raise RuntimeError("no repr")


def odd_values():
    big = list(range(100_000))
    cyc = [1]
    cyc.append(cyc)
    loud = Loud()
    return len(big)


def divide(a, b):
    q = a / b
    return q


def calls_divide(x):
    y = x + 1
    return divide(y, 0)
