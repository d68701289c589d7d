/* arch.c — the registry of lowerings by general.architecture. Supporting another
 * architecture is a new lower_<arch>.c and one line here; nothing else changes. */
#include <string.h>

#include "compile_internal.h"

static const struct qp_arch archs[] = {
    {"qwen2", qp_lower_qwen2},
};

const struct qp_arch *qp_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, name) == 0) return &archs[i];
    return NULL;
}

const char *qp_compile_architectures(void) {
    static char list[256];
    size_t len = 0;
    list[0] = 0;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        size_t n = strlen(archs[i].name);
        if (len + n + 3 > sizeof list) break;
        if (i) {
            memcpy(list + len, ", ", 2);
            len += 2;
        }
        memcpy(list + len, archs[i].name, n + 1);
        len += n;
    }
    return list;
}
