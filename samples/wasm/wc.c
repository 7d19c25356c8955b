/* wc: count lines, words and bytes of a file (or stdin), and the commonest letters.
 *
 * A WASI program that reads the file system: run it with the file's directory preopened,
 *     probe run --dir . wc.wasm -- notes.txt
 */
#include <ctype.h>
#include <stdio.h>

int main(int argc, char **argv) {
    FILE *f = stdin;
    if (argc > 1 && !(f = fopen(argv[1], "r"))) {
        perror(argv[1]);
        return 1;
    }
    long lines = 0, words = 0, bytes = 0, letters[26] = {0};
    int c, in_word = 0;
    while ((c = fgetc(f)) != EOF) {
        bytes++;
        if (c == '\n') lines++;
        if (isspace(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
        if (isalpha(c)) letters[tolower(c) - 'a']++;
    }
    printf("%ld %ld %ld %s\n", lines, words, bytes, argc > 1 ? argv[1] : "-");
    for (int shown = 0; shown < 3; shown++) {
        int best = 0;
        for (int i = 1; i < 26; i++)
            if (letters[i] > letters[best]) best = i;
        if (!letters[best]) break;
        printf("%c %ld\n", 'a' + best, letters[best]);
        letters[best] = 0;
    }
    return 0;
}
