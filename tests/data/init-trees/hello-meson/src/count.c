/* Each worker thread sums the square roots of its share of 1..4000; the total is the same everywhere. */
#include <math.h>
#include <pthread.h>
#include "count.h"

struct share { unsigned first, last; double sum; };

static void *work(void *argument) {
    struct share *share = argument;
    for (unsigned n = share->first; n <= share->last; n++) share->sum += sqrt((double)n);
    return 0;
}

double root_sum(unsigned workers) {
    pthread_t threads[8];
    struct share shares[8];
    double total = 0;
    if (workers > 8) workers = 8;
    for (unsigned i = 0; i < workers; i++) {
        shares[i] = (struct share){i * 4000 / workers + 1, (i + 1) * 4000 / workers, 0};
        pthread_create(&threads[i], 0, work, &shares[i]);
    }
    for (unsigned i = 0; i < workers; i++) {
        pthread_join(threads[i], 0);
        total += shares[i].sum;
    }
    return total;
}
