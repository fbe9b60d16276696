/*
 * Lookups over the generated FHIR R4 tables (src/fhir/gen/): every table is
 * sorted by strcmp, so all of these are binary searches.
 */
#include "fhir/defs.h"

#include <string.h>

const struct mr_type *mr_fhir_type_find(const char *name)
{
    size_t lo = 0, hi = mr_fhir_types_count;

    if (name == NULL)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, mr_fhir_types[mid].name);

        if (c == 0)
            return &mr_fhir_types[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const struct mr_elem *mr_fhir_elem_find(const struct mr_type *t,
                                        const char *name)
{
    size_t lo = 0, hi;

    if (t == NULL || name == NULL)
        return NULL;
    hi = t->nelems;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, t->elems[mid].name);

        if (c == 0)
            return &t->elems[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int mr_fhir_is_resource_type(const char *name)
{
    const struct mr_type *t = mr_fhir_type_find(name);

    return t != NULL && t->kind == MR_KIND_RESOURCE;
}

/* Order of the search-parameter table: resource, then code. */
static int sp_cmp(const char *resource, const char *code,
                  const struct mr_search_param *p)
{
    int c = strcmp(resource, p->resource);

    if (c != 0 || code == NULL)
        return c;
    return strcmp(code, p->code);
}

/* Parameters every resource has (R4 Resource: _tag, _security), which the
 * generated table leaves out: the access policy filters on them. Keys are
 * FNV-1a of "Resource._tag" and "Resource._security", as generated ones. */
static const struct mr_sp_path p_tag[] = {
    {"meta.tag", "Coding", NULL, NULL, NULL}};
static const struct mr_sp_path p_security[] = {
    {"meta.security", "Coding", NULL, NULL, NULL}};
const struct mr_search_param mr_common_params[] = {
    {"Resource", "_security", MR_SP_TOKEN, 1865373220u, p_security, 1, NULL, 0,
     "Resource.meta.security"},
    {"Resource", "_tag", MR_SP_TOKEN, 1696771522u, p_tag, 1, NULL, 0,
     "Resource.meta.tag"},
};
const size_t mr_common_params_count =
    sizeof(mr_common_params) / sizeof(mr_common_params[0]);

const struct mr_search_param *mr_search_param_find(const char *resource,
                                                   const char *code)
{
    size_t lo = 0, hi = mr_search_params_count;

    if (resource == NULL || code == NULL)
        return NULL;
    if (code[0] == '_' && mr_fhir_is_resource_type(resource))
        for (size_t i = 0; i < mr_common_params_count; i++)
            if (!strcmp(code, mr_common_params[i].code))
                return &mr_common_params[i];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = sp_cmp(resource, code, &mr_search_params[mid]);

        if (c == 0)
            return &mr_search_params[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

void mr_search_params_of(const char *resource,
                         const struct mr_search_param **first, size_t *n)
{
    size_t lo = 0, hi = mr_search_params_count, start, end;

    *first = mr_search_params;
    *n = 0;
    if (resource == NULL)
        return;
    /* lower bound of resource */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(mr_search_params[mid].resource, resource) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    start = lo;
    hi = mr_search_params_count;
    /* upper bound of resource */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(mr_search_params[mid].resource, resource) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    end = lo;
    *first = mr_search_params + start;
    *n = end - start;
}
