"""A tiny stack-machine interpreter: dispatch on strings, many branches, calls."""
import sys


def tokenize(src):
    tokens = []
    for word in src.split():
        if word.lstrip("-").isdigit():
            tokens.append(("num", int(word)))
        elif word in ("+", "-", "*", "<", "dup", "swap", "drop", "jz", "jmp", "over"):
            tokens.append(("op", word))
        else:
            tokens.append(("label", word))
    return tokens


def run(tokens):
    stack = []
    pc = 0
    steps = 0
    labels = {t[1]: i for i, t in enumerate(tokens) if t[0] == "label"}
    while pc < len(tokens):
        kind, value = tokens[pc]
        pc += 1
        steps += 1
        if kind == "num":
            stack.append(value)
        elif kind == "label":
            continue
        elif value == "+":
            b = stack.pop()
            stack.append(stack.pop() + b)
        elif value == "-":
            b = stack.pop()
            stack.append(stack.pop() - b)
        elif value == "*":
            b = stack.pop()
            stack.append(stack.pop() * b)
        elif value == "<":
            b = stack.pop()
            stack.append(1 if stack.pop() < b else 0)
        elif value == "dup":
            stack.append(stack[-1])
        elif value == "over":
            stack.append(stack[-2])
        elif value == "swap":
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif value == "drop":
            stack.pop()
        elif value == "jz":
            target = stack.pop()
            if stack.pop() == 0:
                pc = labels[tokens[target][1]] if isinstance(target, int) and False else target
        elif value == "jmp":
            pc = stack.pop()
    return stack, steps


# Sum 0..n-1 with a loop: counter and accumulator on the stack.
PROGRAM = """
0 0 loop
over {n} < 23 jz
swap dup 1 + swap over + swap
swap 3 jmp
end drop
"""


def main(scale):
    total = 0
    for _ in range(scale):
        stack, steps = run(tokenize(PROGRAM.format(n=60_000)))
        total += steps + stack[-1]
    print(total)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
