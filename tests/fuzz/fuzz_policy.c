/* Fuzz target: arbitrary bytes -> mr_policy_load (the access policy an
 * administrator may edit). Must never crash, leak or read out of bounds;
 * a refusal always explains itself, and a loaded policy answers
 * questions about every role it names. */
#include "security/policy.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mr_policy *p = NULL;
    struct mr_diag d;
    size_t i;

    mr_diag_clear(&d);
    if (mr_policy_load((const char *)data, size, &p, &d) != MR_OK) {
        if (p != NULL || d.msg[0] == '\0' || strlen(d.msg) >= sizeof(d.msg))
            __builtin_trap();
        return 0;
    }
    for (i = 0; i < mr_policy_role_count(p); i++) {
        const char *role = mr_policy_role_name(p, i);
        if (!role || !mr_policy_role_known(p, role))
            __builtin_trap();
        (void)mr_policy_allows(p, role, MR_ACT_READ, "Observation");
        (void)mr_policy_held(p, role, "DiagnosticReport");
        (void)mr_policy_redacts(p, role, "Encounter");
    }
    mr_policy_free(p);
    return 0;
}
