/*
 * Structural validation of FHIR R4 resources against the compiled
 * definitions (fhir/defs.h): known elements, JSON shapes and cardinality,
 * primitive formats, choice groups, required value-set bindings, and
 * nested resources (contained, Bundle.entry.resource ...).
 *
 * Not checked: invariants (FHIRPath constraints), profiles, extensible or
 * preferred bindings, reference targets.
 */
#ifndef MR_FHIR_VALIDATE_H
#define MR_FHIR_VALIDATE_H

#include "medrec/medrec.h"

#include <jansson.h>

/* Nesting limit of objects and arrays inside one resource. */
#define MR_FHIR_MAX_DEPTH 64

/*
 * Validate a FHIR R4 resource structurally against the compiled
 * definitions. On failure returns MR_EINVALID with d->msg naming the path
 * and the reason, e.g.
 *   Patient.birthDate: "1984-13-09" is not a valid date
 *   Patient.foo: unknown element
 *   Patient.gender: "x" is not in the required value set (male | female |
 *     other | unknown)
 *   Observation.status: required element is missing
 *   Patient.name: must be an array
 * The first error found is reported. expected_type may be NULL (any
 * resource type). d may be NULL. Never modifies res.
 */
enum mr_err mr_fhir_validate(const json_t *res, const char *expected_type,
                             struct mr_diag *d) MR_WUR;

#endif
