"""Functions that start in every way Python has: calls, recursion, generators (one left
suspended), comprehensions, lambdas, a class body, a loop at the first line, exceptions."""
import sys

class A:
    def m(self, x):
        return [y * 2 for y in range(x)]

def gen(n):
    for i in range(n):
        yield i

def rec(n):
    if n <= 0:
        return 0
    return 1 + rec(n - 1)

def boom(i):
    if i % 3 == 0:
        raise ValueError(i)
    return i

def loop_first():
    while True:
        n = sum(gen(3))
        if n:
            break
    return n

def outer():
    def inner(k):
        return k + 1
    return sum(inner(k) for k in range(5))

total = 0
for i in range(10):
    total += len(A().m(i)) + rec(i) + loop_first() + outer()
    try:
        boom(i)
    except ValueError:
        pass
g = gen(100)
next(g)
f = lambda z: z * 2
print(total, f(3), list(map(f, range(4))))
