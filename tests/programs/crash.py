import sys


def divide(a, b):
    return a / b


print("before", flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "exit":
    sys.exit(int(sys.argv[2]))
if len(sys.argv) > 1 and sys.argv[1] == "hard":
    import os
    os._exit(int(sys.argv[2]))
divide(1, 0)
print("never")
