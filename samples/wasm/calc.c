/* Indirect calls through a table of operations, recursion, and array traffic:
   a sample for the calls, memory and trace analyses. Usage: calc.wasm [N [F]]: fold N <= 64
   numbers, and compute fib(F) (default 15) the slow way. */
#include <stdio.h>
#include <stdlib.h>

typedef int (*op_fn)(int, int);

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }
static int rem(int a, int b) { return b ? a % b : 0; }

static op_fn ops[4] = {add, sub, mul, rem};
static int data[64];

__attribute__((noinline)) static int fold(int n, int first) {
    int acc = first;
    for (int i = 0; i < n; i++)
        acc = ops[(i + first) & 3](acc, data[i]);
    return acc;
}

__attribute__((noinline)) static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 40;
    if (n > 64 || n < 0)
        n = 64;
    for (int i = 0; i < n; i++)
        data[i] = i * 3 + 1;
    int total = 0;
    for (int k = 0; k < 4; k++)
        total += fold(n, k);
    int f = argc > 2 ? atoi(argv[2]) : 15;
    printf("fold %d fib %d\n", total, fib(f));
    return 0;
}
