/* fuzz_credentials.c: the JSON that IMDS and the ECS endpoint answer with. */
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    credentials k = {0};
    const char *why = NULL;
    if (creds_parse_json((const char *)data, size, "imds", &k, &why) == 0) {
        if (!k.access_key_id || !k.secret_access_key)
            __builtin_trap();
        credentials_clear(&k);
    } else if (!why) {
        __builtin_trap(); /* a failure always says why */
    }
    return 0;
}
