/* CPU-bound kernels for the Wasm benchmark: kernels KERNEL N prints a checksum.
 *
 * KERNEL is one of matmul, stencil, sort, hash, compress; N scales the work.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 12345;

static uint32_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static double matmul(int n, int reps) {
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n),
           *c = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n * n; i++) {
        a[i] = (double)(rng() % 100) / 10.0;
        b[i] = (double)(rng() % 100) / 10.0;
    }
    double sum = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double acc = 0;
                for (int k = 0; k < n; k++) acc += a[i * n + k] * b[k * n + j];
                c[i * n + j] = acc;
            }
        sum += c[(r * 7) % (n * n)];
    }
    free(a), free(b), free(c);
    return sum;
}

static double stencil(int n, int steps) {
    float *grid = calloc((size_t)n * n, sizeof(float)), *next = calloc((size_t)n * n, sizeof(float));
    for (int i = 0; i < n; i++) grid[i] = 100.0f;
    for (int s = 0; s < steps; s++) {
        for (int i = 1; i < n - 1; i++)
            for (int j = 1; j < n - 1; j++)
                next[i * n + j] = 0.25f * (grid[(i - 1) * n + j] + grid[(i + 1) * n + j] +
                                           grid[i * n + j - 1] + grid[i * n + j + 1]);
        for (int i = 0; i < n; i++) next[i] = grid[i];
        float *t = grid;
        grid = next;
        next = t;
    }
    double sum = 0;
    for (int i = 0; i < n * n; i++) sum += grid[i];
    free(grid), free(next);
    return sum;
}

static void merge_sort(int32_t *a, int32_t *tmp, int n) {
    if (n < 24) {
        for (int i = 1; i < n; i++) {
            int32_t key = a[i];
            int j = i - 1;
            while (j >= 0 && a[j] > key) {
                a[j + 1] = a[j];
                j--;
            }
            a[j + 1] = key;
        }
        return;
    }
    int mid = n / 2;
    merge_sort(a, tmp, mid);
    merge_sort(a + mid, tmp, n - mid);
    int i = 0, j = mid, k = 0;
    while (i < mid && j < n) tmp[k++] = a[i] <= a[j] ? a[i++] : a[j++];
    while (i < mid) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, sizeof(int32_t) * n);
}

static double sort(int n, int reps) {
    int32_t *a = malloc(sizeof(int32_t) * n), *tmp = malloc(sizeof(int32_t) * n);
    double sum = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < n; i++) a[i] = (int32_t)(rng() % 1000000);
        merge_sort(a, tmp, n);
        sum += a[n / 2];
    }
    free(a), free(tmp);
    return sum;
}

static double hash(int n, int reps) {
    uint8_t *buf = malloc(n);
    for (int i = 0; i < n; i++) buf[i] = (uint8_t)rng();
    uint64_t total = 0;
    for (int r = 0; r < reps; r++) {
        uint32_t h = 2166136261u ^ (uint32_t)r;  /* FNV-1a */
        for (int i = 0; i < n; i++) h = (h ^ buf[i]) * 16777619u;
        uint64_t m = 0x9E3779B97F4A7C15ull;  /* a multiplicative mix over 8-byte words */
        for (int i = 0; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, buf + i, 8);
            m = (m ^ w) * 0xff51afd7ed558ccdull;
            m ^= m >> 33;
        }
        total += h ^ m;
    }
    free(buf);
    return (double)(total % 1000000007u);
}

/* A run-length then LZ77-style matcher over text-like data: branchy byte loops. */
static double compress(int n, int reps) {
    uint8_t *in = malloc(n), *out = malloc(2 * n + 16);
    const char *words[] = {"the ", "quick ", "brown ", "fox ", "jumps ", "over ", "lazy ", "dog "};
    int p = 0;
    while (p < n) {
        const char *w = words[rng() % 8];
        for (int k = 0; w[k] && p < n; k++) in[p++] = (uint8_t)w[k];
    }
    double sum = 0;
    for (int r = 0; r < reps; r++) {
        int o = 0, i = 0;
        while (i < n) {
            int best_len = 0, best_dist = 0;
            int start = i > 255 ? i - 255 : 0;
            for (int j = start; j < i; j++) {
                int len = 0;
                while (i + len < n && len < 255 && in[j + len] == in[i + len]) len++;
                if (len > best_len) {
                    best_len = len;
                    best_dist = i - j;
                }
            }
            if (best_len >= 3) {
                out[o++] = 0xff;
                out[o++] = (uint8_t)best_dist;
                out[o++] = (uint8_t)best_len;
                i += best_len;
            } else {
                out[o++] = in[i++];
            }
        }
        sum += o;
    }
    free(in), free(out);
    return sum;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: kernels matmul|stencil|sort|hash|compress [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1;
    double result;
    if (!strcmp(argv[1], "matmul")) result = matmul(200, n);
    else if (!strcmp(argv[1], "stencil")) result = stencil(400, 20 * n);
    else if (!strcmp(argv[1], "sort")) result = sort(200000, n);
    else if (!strcmp(argv[1], "hash")) result = hash(1 << 20, 8 * n);
    else if (!strcmp(argv[1], "compress")) result = compress(1 << 16, n);
    else {
        fprintf(stderr, "kernels: unknown kernel %s\n", argv[1]);
        return 2;
    }
    printf("%s %.3f\n", argv[1], result);
    return 0;
}
