/* check.h — the one check macro of the test programs: CHECK(cond) or CHECK(cond, "fmt", ...)
 * prints the file, line, the condition and the optional message, counts the failure and goes
 * on, so one run reports every mismatch; a test's main returns failures ? 1 : 0. */
#pragma once
#include <stdio.h>

static int failures;

#define CHECK(c, ...)                                                                          \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            failures++;                                                                        \
            printf("FAIL %s:%d: %s:", __FILE__, __LINE__, #c);                                 \
            printf(" " __VA_ARGS__);                                                           \
            printf("\n");                                                                      \
            fflush(stdout);                                                                    \
        }                                                                                      \
    } while (0)
