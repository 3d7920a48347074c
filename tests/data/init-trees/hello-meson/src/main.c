/* hello-meson: a threaded C program built by Meson. */
#include <stdio.h>
#include <string.h>
#include "count.h"

static const char usage[] =
    "usage: hello-meson [--version]\n"
    "  --version  print the version and exit\n";

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("hello-meson %s\n", VERSION);
        return 0;
    }
    if (argc > 1) {
        fputs(usage, stderr);
        return 2;
    }
    printf("sum of square roots: %.3f\n", root_sum(4));
    return 0;
}
