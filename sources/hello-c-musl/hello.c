/* hello-c-musl prints a greeting; linked statically against musl. */
#include <stdio.h>

int main(void) {
    puts("Hello from OS-less container (C edition)");
    return 0;
}
