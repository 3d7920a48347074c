#ifndef COUNT_H
#define COUNT_H
double root_sum(unsigned workers);
#endif
