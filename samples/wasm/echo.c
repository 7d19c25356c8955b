/* echo: prints its arguments, $GREETING, and stdin upper-cased; exits with $EXIT_CODE. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("arg %d: %s\n", i, argv[i]);
    const char *greeting = getenv("GREETING");
    printf("greeting: %s\n", greeting ? greeting : "(none)");
    int c;
    while ((c = getchar()) != EOF) putchar(toupper(c));
    fprintf(stderr, "echo: done\n");
    const char *code = getenv("EXIT_CODE");
    return code ? atoi(code) : 0;
}
