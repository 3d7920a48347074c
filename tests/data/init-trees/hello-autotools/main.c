/* hello-autotools: a C program configured by autoconf and built by automake. */
#include "config.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("%s\n", PACKAGE_STRING);
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "usage: hello-autotools [--version]\n");
        return 2;
    }
    printf("cos(0) = %.1f\n", cos(0.0));
    return 0;
}
