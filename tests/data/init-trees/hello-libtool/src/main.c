/* hello-libtool: a program linked with a library libtool builds (shared and static by default). */
#include <stdio.h>
#include <string.h>
#include "greet.h"

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        puts("hello-libtool " PACKAGE_VERSION);
        return 0;
    }
    if (argc > 1) {
        fputs("usage: hello-libtool [--version]\n", stderr);
        return 2;
    }
    puts(greeting());
    return 0;
}
