"""Loops, branches, early exits, while/else, for/else, match."""
import sys


def classify(n):
    if n < 0:
        return "negative"
    elif n == 0:
        return "zero"
    elif n % 2:
        kind = "odd"
    else:
        kind = "even"
    return kind


def search(items, wanted):
    for i, item in enumerate(items):
        if item == wanted:
            break
    else:
        return -1
    return i


def countdown(n):
    steps = 0
    while n > 0:
        n -= 1
        if n == 100:
            continue
        steps += 1
    else:
        steps += 1000
    return steps


def loop_forever(limit):
    i = 0
    while True:
        i += 1
        if i >= limit:
            break
    return i


def shape(value):
    match value:
        case 0 | 1:
            return "bit"
        case [x, y] if x == y:
            return "pair"
        case {"kind": k}:
            return k
        case str():
            return "text"


def ternary(a,
            b):
    return (a if a > b
            else b)


def nested(n):
    total = 0
    for i in range(n):
        for j in range(i):
            if (i + j) % 3 == 0 and j:
                total += 1
            elif i > 5 or \
                    j > 7:
                total -= 1
    return total


for v in (-1, 0, 3, 4):
    classify(v)
search([1, 2, 3], 2)
search([1, 2, 3], 9)
countdown(5)
loop_forever(3)
for v in (1, [2, 2], {"kind": "k"}, 3.5):
    shape(v)
ternary(1, 2)
nested(10)
if len(sys.argv) > 1:
    print("args", sys.argv[1:])
print("done")
