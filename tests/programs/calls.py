"""Calls of every shape: recursion, methods, generators, callbacks from C, exceptions."""


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self, by):
        self.n += by
        return self.n


def evens(limit):
    for i in range(limit):
        if i % 2 == 0:
            yield square(i)


def square(x):
    return x * x


def risky(x):
    if x == 3:
        raise ValueError(x)
    return -x


def main():
    c = Counter()
    total = 0
    for v in evens(10):
        total += c.bump(v)
    total += sum(map(square, range(4)))
    for x in range(5):
        try:
            total += risky(x)
        except ValueError:
            total += 100
    print(fib(12), total, sorted([3, 1, 2], key=lambda k: -k))


main()
