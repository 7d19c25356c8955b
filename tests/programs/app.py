"""Imports the user's own package and module."""
import sys

import helper
from shapes import area, describe

print(helper.greet(sys.argv[1] if len(sys.argv) > 1 else "world"))
print(area("square", 3), area("circle", 1))
print(describe(3))
