import os
import sys

print("argv", sys.argv)
print("name", __name__)
print("path0", sys.path[0] == os.path.dirname(os.path.abspath(__file__)))
print("file", os.path.basename(__file__))
data = sys.stdin.read()
print("stdin", data.upper().strip())
print("err", file=sys.stderr)
