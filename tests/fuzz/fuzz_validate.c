/* Fuzz target: arbitrary bytes -> JSON -> mr_fhir_validate. Must never
 * crash, leak or read out of bounds, whatever the input. */
#include "fhir/validate.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *root;
    struct mr_diag d;

    root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return 0;
    mr_diag_clear(&d);
    if (mr_fhir_validate(root, NULL, &d) != MR_OK) {
        /* the message must be a terminated string */
        if (strlen(d.msg) >= sizeof(d.msg))
            __builtin_trap();
    }
    /* and once more against a fixed expected type */
    if (mr_fhir_validate(root, "Patient", &d) != MR_OK && d.msg[0] == '\0')
        __builtin_trap();
    json_decref(root);
    return 0;
}
