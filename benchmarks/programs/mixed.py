"""Many functions of different weights: a tokenizer, a parser and an evaluator of arithmetic,
JSON round trips, difflib, sorting with a key, heapq and a small simulation. For sampling
profilers to agree on where the time goes beyond the first two or three functions."""
import difflib
import heapq
import json
import random
import sys


def tokenize(text):
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            tokens.append(int(text[i:j]))
            i = j
        elif c in "+-*/()":
            tokens.append(c)
            i += 1
        else:
            i += 1
    return tokens


def parse_expr(tokens, pos):
    left, pos = parse_term(tokens, pos)
    while pos < len(tokens) and tokens[pos] in ("+", "-"):
        op = tokens[pos]
        right, pos = parse_term(tokens, pos + 1)
        left = (op, left, right)
    return left, pos


def parse_term(tokens, pos):
    left, pos = parse_atom(tokens, pos)
    while pos < len(tokens) and tokens[pos] in ("*", "/"):
        op = tokens[pos]
        right, pos = parse_atom(tokens, pos + 1)
        left = (op, left, right)
    return left, pos


def parse_atom(tokens, pos):
    if tokens[pos] == "(":
        node, pos = parse_expr(tokens, pos + 1)
        return node, pos + 1
    return tokens[pos], pos + 1


def evaluate(node):
    if isinstance(node, int):
        return node
    op, a, b = node
    x, y = evaluate(a), evaluate(b)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    return x // y if y else 0


def random_expr(rng, depth):
    if depth == 0 or rng.random() < 0.3:
        return str(rng.randint(1, 99))
    op = rng.choice("+-*/")
    return f"({random_expr(rng, depth - 1)} {op} {random_expr(rng, depth - 1)})"


def arithmetic(rng, n):
    total = 0
    for _ in range(n):
        tokens = tokenize(random_expr(rng, 6))
        tree, _ = parse_expr(tokens, 0)
        total += evaluate(tree)
    return total


def json_round_trips(rng, n):
    size = 0
    for _ in range(n):
        doc = {"id": rng.randint(0, 1000), "tags": [str(rng.random()) for _ in range(20)]}
        size += len(json.loads(json.dumps(doc))["tags"])
    return size


def diffs(rng, n):
    words = [str(rng.randint(0, 50)) for _ in range(200)]
    changed = 0
    for _ in range(n):
        other = list(words)
        for _ in range(10):
            other[rng.randrange(len(other))] = "x"
        changed += len(list(difflib.unified_diff(words, other, lineterm="")))
    return changed


def sort_records(rng, n):
    records = [(rng.random(), rng.randint(0, 100), str(i)) for i in range(n)]
    return sorted(records, key=lambda r: (r[1], -r[0]))[0]


def top_k(rng, n, k):
    return heapq.nlargest(k, (rng.random() for _ in range(n)))


def simulate(rng, steps):
    particles = [[rng.random(), rng.random(), 0.0, 0.0] for _ in range(100)]
    for _ in range(steps):
        for p in particles:
            p[2] += (0.5 - p[0]) * 0.01
            p[3] += (0.5 - p[1]) * 0.01
            p[0] += p[2]
            p[1] += p[3]
    return sum(p[0] for p in particles)


def main(scale):
    rng = random.Random(7)
    for _ in range(scale):
        arithmetic(rng, 300)
        json_round_trips(rng, 300)
        diffs(rng, 6)
        sort_records(rng, 20_000)
        top_k(rng, 50_000, 10)
        simulate(rng, 200)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
