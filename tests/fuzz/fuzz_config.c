/* fuzz_config.c: the configuration parser on arbitrary file contents. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) {
        char dir[] = "/tmp/cwlogd-fuzz-config-XXXXXX";
        if (!mkdtemp(dir))
            return 0;
        snprintf(path, sizeof path, "%s/cwlogd.conf", dir);
        log_set_level(LOG_LEVEL_ERROR - 1); /* quiet */
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    config *c = NULL;
    config_errors errs = {0};
    if (config_load(path, &c, &errs) == 0 && (!c || c->n_sources == 0))
        __builtin_trap(); /* success means at least one source */
    config_free(c);
    config_errors_free(&errs);
    return 0;
}
