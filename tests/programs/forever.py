import sys
import time

print("started", flush=True)
n = 0
while True:
    n += 1
    if n % 1000 == 0:
        time.sleep(0.001)
