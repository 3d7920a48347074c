/* hello-c-zig: C compiled by `zig cc` against musl, statically. The output proves the C runtime works
 * (threads, the heap, printf's integer and floating-point formatting), and is the same on every platform
 * and every run. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 4
#define PER_WORKER 250000ULL

struct work {
    unsigned long long index;
    uint64_t sum;
};

/* Sums the squares of one worker's share of 1..WORKERS*PER_WORKER. */
static void *run(void *arg) {
    struct work *work = arg;
    uint64_t sum = 0;
    for (uint64_t n = work->index * PER_WORKER + 1; n <= (work->index + 1) * PER_WORKER; n++)
        sum += n * n;
    work->sum = sum;
    return NULL;
}

int main(void) {
    pthread_t threads[WORKERS];
    struct work works[WORKERS];
    for (unsigned i = 0; i < WORKERS; i++) {
        works[i] = (struct work){.index = i, .sum = 0};
        if (pthread_create(&threads[i], NULL, run, &works[i]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    uint64_t total = 0;
    for (unsigned i = 0; i < WORKERS; i++) {
        pthread_join(threads[i], NULL);
        total += works[i].sum;
    }

    /* The heap: a buffer grown with realloc, filled with formatted squares. */
    size_t size = 1, used = 0;
    char *joined = malloc(size);
    if (joined == NULL)
        return 1;
    joined[0] = '\0';
    for (unsigned i = 0; i < 10; i++) {
        char word[16];
        int length = snprintf(word, sizeof word, "%s%u", i ? "," : "", i * i);
        char *grown = realloc(joined, size + (size_t)length);
        if (grown == NULL) {
            free(joined);
            return 1;
        }
        joined = grown;
        memcpy(joined + used, word, (size_t)length + 1);
        used += (size_t)length;
        size += (size_t)length;
    }

    printf("Hello from OS-less container (C via zig cc edition)\n");
    printf("threads: %d workers, sum of squares 1..%llu = %llu (0x%llx)\n", WORKERS, WORKERS * PER_WORKER,
           (unsigned long long)total, (unsigned long long)total);
    printf("heap: %zu bytes [%s]\n", used, joined);
    printf("printf: %.3f %e |%6s|%-6s| %08o\n", 3.14159265358979, 1234.5, "right", "left", 0245);
    free(joined);
    return 0;
}
