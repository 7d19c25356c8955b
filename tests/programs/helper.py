def greet(name):
    if name == "world":
        return "hello, world"
    return f"hello, {name}"


def unused(x):
    if x:
        return 1
    return 2
