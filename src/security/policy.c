/*
 * The policy engine. mr_policy_load checks the JSON document key by key
 * (every error names its path) and compiles it: for each role one byte per
 * FHIR type (indexed like mr_fhir_types) holding the allowed actions and a
 * "held until released" bit, bit masks of the sensitivity labels the role
 * holds and may break the glass for, and the list of hidden elements.
 * Decisions are then a binary search for the role and one for the type,
 * and a table lookup.
 */
#include "security/policy.h"

#include "core/alloc.h"
#include "fhir/defs.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACT_BIT(a) (1u << (a))
#define ACT_ALL (ACT_BIT(MR_ACT__COUNT) - 1)
/* Actions that disclose a resource (mr_policy_visible needs one). */
#define ACT_SEE                                                                \
    (ACT_BIT(MR_ACT_READ) | ACT_BIT(MR_ACT_SEARCH) | ACT_BIT(MR_ACT_HISTORY) | \
     ACT_BIT(MR_ACT_EXPORT))
#define ACT_WRITE                                                              \
    (ACT_BIT(MR_ACT_CREATE) | ACT_BIT(MR_ACT_UPDATE) | ACT_BIT(MR_ACT_DELETE))
/* In a role's type table next to the action bits: held until released. */
#define HOLD 0x80u

#define PATH_CAP 256
#define QUOTE_MAX 64
#define ELEM_MAX 96 /* longest element name that can be hidden */

static const char default_json[] =
#include "security/gen/policy_default.inc"
    ;

static const char *const action_names[MR_ACT__COUNT] = {
    "read", "search", "create", "update", "delete", "history", "export",
};

static const char *const privilege_names[MR_PRIV__COUNT] = {
    "manage-users",       "manage-policy",     "merge-patients",
    "release-to-patient", "manage-interfaces",
};

/* Roles the rest of medrec refers to by name: a policy must define them. */
static const char *const required_roles[] = {
    "admin",          "records-technician",
    "clinician",      "admission-clerk",
    "lab-technician", "coder",
    "auditor",        "patient",
};

/* The elements of one type a role does not see. */
struct hidden {
    size_t type;        /* index in mr_fhir_types */
    const char **names; /* JSON names, pointing into the FHIR tables */
    size_t n;
};

struct role {
    char *name;
    uint8_t *acts;   /* mr_fhir_types_count entries: action bits | HOLD */
    uint32_t labels; /* label bits the role holds */
    uint32_t glass;  /* label bits the emergency flag adds */
    unsigned privs;  /* bit per enum mr_privilege */
    int own;         /* own compartment only */
    int system_token;
    struct hidden *hidden;
    size_t nhidden;
};

/* One coding that carries a label. */
struct label {
    char *system, *code;
    unsigned bit;
};

struct mr_policy {
    struct role *roles; /* sorted by name */
    size_t nroles;
    uint8_t *acts; /* nroles x mr_fhir_types_count, shared by the roles */
    struct label *labels;
    size_t nlabels, labels_cap;
};

/* ---- names ------------------------------------------------------------ */

const char *mr_policy_action_name(enum mr_action act)
{
    if ((unsigned)act >= MR_ACT__COUNT)
        return "?";
    return action_names[act];
}

const char *mr_policy_privilege_name(enum mr_privilege priv)
{
    if ((unsigned)priv >= MR_PRIV__COUNT)
        return "?";
    return privilege_names[priv];
}

const char *mr_policy_default_json(size_t *len)
{
    if (len)
        *len = sizeof(default_json) - 1;
    return default_json;
}

/* ---- loading: paths and messages -------------------------------------- */

struct group {
    const char *name; /* a key of the parsed document */
    uint64_t *set;    /* bit per mr_fhir_types index */
};

struct ld {
    struct mr_diag *d;
    char path[PATH_CAP];
    size_t len;
    size_t words; /* uint64_t words of a type set */
    uint64_t *tmp;
    const json_t *groups_obj;
    const char *group_now; /* the group being defined, if any */
    struct group groups[MR_POLICY_MAX_GROUPS];
    size_t ngroups;
    const char *label_names[MR_POLICY_MAX_LABELS];
    size_t nlabel_names;
    struct mr_policy *p;
};

static size_t path_add(struct ld *c, const char *s, size_t n)
{
    size_t old = c->len, i;

    for (i = 0; i < n && c->len < PATH_CAP - 1; i++) {
        unsigned char ch = (unsigned char)s[i];

        c->path[c->len++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    c->path[c->len] = '\0';
    return old;
}

/* Append ".key" (cut at QUOTE_MAX bytes, control characters replaced, so
 * a message never carries a forged line); returns the length to restore. */
static size_t path_key(struct ld *c, const char *key)
{
    size_t old = c->len, n = strlen(key);

    path_add(c, ".", 1);
    if (n > QUOTE_MAX) {
        path_add(c, key, QUOTE_MAX);
        path_add(c, "...", 3);
    } else {
        path_add(c, key, n);
    }
    return old;
}

static size_t path_index(struct ld *c, size_t i)
{
    size_t old = c->len;
    char b[32];
    int n = snprintf(b, sizeof(b), "[%zu]", i);

    path_add(c, b, n > 0 ? (size_t)n : 0);
    return old;
}

static void path_pop(struct ld *c, size_t old)
{
    c->len = old;
    c->path[old] = '\0';
}

static enum mr_err fail(struct ld *c, const char *fmt, ...) MR_PRINTF(2, 3);

/* Report "path: reason" as MR_EINVALID. */
static enum mr_err fail(struct ld *c, const char *fmt, ...)
{
    char reason[sizeof(c->d->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return mr_diag_set(c->d, MR_EINVALID, "%s: %s", c->path, reason);
}

/* s quoted for a message: bounded, quotes and control characters
 * escaped. */
static const char *quote(const char *s, char out[QUOTE_MAX + 16])
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; s[i] != '\0' && o < QUOTE_MAX; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else {
            out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
        }
    }
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static enum mr_err fail_type(struct ld *c, const char *want)
{
    return fail(c, "must be %s", want);
}

/* Refuse any key of obj not in allowed (NULL-terminated). */
static enum mr_err check_keys(struct ld *c, const json_t *obj,
                              const char *const *allowed)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        char list[256];
        size_t i, o = 0;

        for (i = 0; allowed[i] != NULL; i++)
            if (strcmp(key, allowed[i]) == 0)
                break;
        if (allowed[i] != NULL)
            continue;
        list[0] = '\0';
        for (i = 0; allowed[i] != NULL && o < sizeof(list); i++) {
            int n = snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
                             allowed[i]);
            if (n < 0)
                break;
            o += (size_t)n;
        }
        path_key(c, key);
        return fail(c, "unknown key (expected one of: %s)", list);
    }
    return MR_OK;
}

/* A role, group or label name: [a-z][a-z0-9-]*, at most MR_POLICY_MAX_NAME
 * bytes. Group names start lowercase so they never collide with types. */
static int valid_name(const char *s)
{
    size_t i;

    if (s[0] < 'a' || s[0] > 'z')
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char ch = s[i];

        if (i >= MR_POLICY_MAX_NAME)
            return 0;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-'))
            return 0;
    }
    return 1;
}

static enum mr_err check_name(struct ld *c, const char *s, const char *what)
{
    char q[QUOTE_MAX + 16];

    if (valid_name(s))
        return MR_OK;
    return fail(c,
                "%s is not a valid %s name (lowercase letters, digits and "
                "'-', starting with a letter, at most %d bytes)",
                quote(s, q), what, MR_POLICY_MAX_NAME);
}

/* A non-empty array (or fail naming what it must be). */
static enum mr_err want_list(struct ld *c, const json_t *v)
{
    if (!json_is_array(v))
        return fail_type(c, "an array");
    if (json_array_size(v) == 0)
        return fail(c, "must not be empty");
    return MR_OK;
}

/* ---- loading: type sets ----------------------------------------------- */

static void set_add(uint64_t *set, size_t i)
{
    set[i / 64] |= (uint64_t)1 << (i % 64);
}

static int set_has(const uint64_t *set, size_t i)
{
    return (int)((set[i / 64] >> (i % 64)) & 1);
}

static const struct group *group_find(const struct ld *c, const char *name)
{
    size_t i;

    for (i = 0; i < c->ngroups; i++)
        if (strcmp(c->groups[i].name, name) == 0)
            return &c->groups[i];
    return NULL;
}

/* One entry of a type list: "*", a group defined above, or a resource
 * type. */
static enum mr_err one_type(struct ld *c, const json_t *v, uint64_t *set)
{
    char q[QUOTE_MAX + 16];
    const struct mr_type *t;
    const struct group *g;
    const char *s;
    size_t i;

    if (!json_is_string(v))
        return fail_type(c, "a string (a resource type, a group or \"*\")");
    s = json_string_value(v);
    if (strcmp(s, "*") == 0) {
        for (i = 0; i < mr_fhir_types_count; i++)
            if (mr_fhir_types[i].kind == MR_KIND_RESOURCE)
                set_add(set, i);
        return MR_OK;
    }
    if (s[0] >= 'a' && s[0] <= 'z') {
        g = group_find(c, s);
        if (g != NULL) {
            for (i = 0; i < c->words; i++)
                set[i] |= g->set[i];
            return MR_OK;
        }
        if (c->group_now != NULL && strcmp(s, c->group_now) == 0)
            return fail(c, "%s: a group cannot contain itself", quote(s, q));
        if (c->group_now != NULL && json_object_get(c->groups_obj, s))
            return fail(c,
                        "%s is defined further down: a group may only use "
                        "groups above it",
                        quote(s, q));
        return fail(c, "%s is not a group defined in policy.groups",
                    quote(s, q));
    }
    t = mr_fhir_type_find(s);
    if (t == NULL || t->kind != MR_KIND_RESOURCE)
        return fail(c, "%s is not a resource type", quote(s, q));
    set_add(set, (size_t)(t - mr_fhir_types));
    return MR_OK;
}

/* A non-empty list of types into set (which is not cleared first). */
static enum mr_err parse_types(struct ld *c, const json_t *arr, uint64_t *set)
{
    enum mr_err rc;
    size_t i, old;
    json_t *v;

    if ((rc = want_list(c, arr)) != MR_OK)
        return rc;
    json_array_foreach(arr, i, v)
    {
        old = path_index(c, i);
        if ((rc = one_type(c, v, set)) != MR_OK)
            return rc;
        path_pop(c, old);
    }
    return MR_OK;
}

static enum mr_err parse_groups(struct ld *c, const json_t *obj)
{
    const char *name;
    enum mr_err rc;
    json_t *v;
    size_t old;

    if (!json_is_object(obj))
        return fail_type(c, "an object of group name: [types]");
    if (json_object_size(obj) > MR_POLICY_MAX_GROUPS)
        return fail(c, "more than %d groups", MR_POLICY_MAX_GROUPS);
    c->groups_obj = obj;
    json_object_foreach((json_t *)obj, name, v)
    {
        struct group *g = &c->groups[c->ngroups];

        old = path_key(c, name);
        if ((rc = check_name(c, name, "group")) != MR_OK)
            return rc;
        g->set = mr_calloc(c->words, sizeof(uint64_t));
        if (g->set == NULL)
            return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
        g->name = name;
        c->group_now = name;
        rc = parse_types(c, v, g->set);
        c->group_now = NULL;
        /* count it only now, so it cannot refer to itself */
        c->ngroups++;
        if (rc != MR_OK)
            return rc;
        path_pop(c, old);
    }
    return MR_OK;
}

/* ---- loading: labels -------------------------------------------------- */

static enum mr_err add_coding(struct ld *c, const json_t *v, unsigned bit)
{
    static const char *const keys[] = {"system", "code", "display", NULL};
    struct mr_policy *p = c->p;
    const char *sys, *code;
    struct label *l;
    enum mr_err rc;
    size_t i;

    if (!json_is_object(v))
        return fail_type(c, "an object with \"system\" and \"code\"");
    if ((rc = check_keys(c, v, keys)) != MR_OK)
        return rc;
    sys = json_string_value(json_object_get(v, "system"));
    code = json_string_value(json_object_get(v, "code"));
    if (sys == NULL || sys[0] == '\0') {
        path_key(c, "system");
        return fail(c, "must be a non-empty string");
    }
    if (code == NULL || code[0] == '\0') {
        path_key(c, "code");
        return fail(c, "must be a non-empty string");
    }
    if (json_object_get(v, "display") &&
        !json_is_string(json_object_get(v, "display"))) {
        path_key(c, "display");
        return fail_type(c, "a string");
    }
    for (i = 0; i < p->nlabels; i++) {
        char q1[QUOTE_MAX + 16], q2[QUOTE_MAX + 16];

        if (strcmp(p->labels[i].system, sys) == 0 &&
            strcmp(p->labels[i].code, code) == 0)
            return fail(c, "%s %s already marks label \"%s\"", quote(sys, q1),
                        quote(code, q2), c->label_names[p->labels[i].bit]);
    }
    if (p->nlabels == p->labels_cap) {
        size_t cap = p->labels_cap ? p->labels_cap * 2 : 16;
        struct label *n = mr_realloc(p->labels, cap * sizeof(*n));

        if (n == NULL)
            return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
        p->labels = n;
        p->labels_cap = cap;
    }
    l = &p->labels[p->nlabels];
    l->system = mr_strdup(sys);
    l->code = mr_strdup(code);
    l->bit = bit;
    p->nlabels++; /* counted even when a copy failed: freed either way */
    if (l->system == NULL || l->code == NULL)
        return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
    return MR_OK;
}

static enum mr_err parse_labels(struct ld *c, const json_t *obj)
{
    const char *name;
    enum mr_err rc;
    json_t *arr, *v;
    size_t i, old, old2;

    if (!json_is_object(obj))
        return fail_type(c, "an object of label name: [codings]");
    if (json_object_size(obj) > MR_POLICY_MAX_LABELS)
        return fail(c, "more than %d labels", MR_POLICY_MAX_LABELS);
    json_object_foreach((json_t *)obj, name, arr)
    {
        unsigned bit = (unsigned)c->nlabel_names;

        old = path_key(c, name);
        if ((rc = check_name(c, name, "label")) != MR_OK)
            return rc;
        c->label_names[c->nlabel_names++] = name;
        if ((rc = want_list(c, arr)) != MR_OK)
            return rc;
        json_array_foreach(arr, i, v)
        {
            old2 = path_index(c, i);
            if ((rc = add_coding(c, v, bit)) != MR_OK)
                return rc;
            path_pop(c, old2);
        }
        path_pop(c, old);
    }
    return MR_OK;
}

/* A list of label names (may be empty) into a bit mask. */
static enum mr_err parse_label_refs(struct ld *c, const json_t *arr,
                                    uint32_t *mask)
{
    char q[QUOTE_MAX + 16];
    size_t i, j, old;
    json_t *v;

    if (!json_is_array(arr))
        return fail_type(c, "an array of label names");
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);

        old = path_index(c, i);
        if (s == NULL)
            return fail_type(c, "a string");
        for (j = 0; j < c->nlabel_names; j++)
            if (strcmp(s, c->label_names[j]) == 0)
                break;
        if (j == c->nlabel_names)
            return fail(c, "%s is not a label defined in policy.labels",
                        quote(s, q));
        *mask |= (uint32_t)1 << j;
        path_pop(c, old);
    }
    return MR_OK;
}

/* ---- loading: roles --------------------------------------------------- */

static enum mr_err parse_actions(struct ld *c, const json_t *arr,
                                 unsigned *mask)
{
    char q[QUOTE_MAX + 16];
    enum mr_err rc;
    size_t i, old;
    unsigned a;
    json_t *v;

    if ((rc = want_list(c, arr)) != MR_OK)
        return rc;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);

        old = path_index(c, i);
        if (s == NULL)
            return fail_type(c, "a string");
        if (strcmp(s, "*") == 0) {
            *mask |= ACT_ALL;
        } else {
            for (a = 0; a < MR_ACT__COUNT; a++)
                if (strcmp(s, action_names[a]) == 0)
                    break;
            if (a == MR_ACT__COUNT)
                return fail(c,
                            "%s is not an action (read, search, create, "
                            "update, delete, history, export or \"*\")",
                            quote(s, q));
            *mask |= ACT_BIT(a);
        }
        path_pop(c, old);
    }
    return MR_OK;
}

/* allow or deny: [{"actions": [...], "types": [...]}, ...] */
static enum mr_err parse_rules(struct ld *c, const json_t *arr, uint8_t *acts,
                               int deny)
{
    static const char *const keys[] = {"actions", "types", NULL};
    const json_t *actions, *types;
    enum mr_err rc;
    size_t i, t, old, old2;
    json_t *rule;

    if (!json_is_array(arr))
        return fail_type(c, "an array of {\"actions\", \"types\"} rules");
    json_array_foreach(arr, i, rule)
    {
        unsigned mask = 0;

        old = path_index(c, i);
        if (!json_is_object(rule))
            return fail_type(c, "an object with \"actions\" and \"types\"");
        if ((rc = check_keys(c, rule, keys)) != MR_OK)
            return rc;
        actions = json_object_get(rule, "actions");
        types = json_object_get(rule, "types");
        if (actions == NULL)
            return fail(c, "\"actions\" is missing");
        if (types == NULL)
            return fail(c, "\"types\" is missing");
        old2 = path_key(c, "actions");
        if ((rc = parse_actions(c, actions, &mask)) != MR_OK)
            return rc;
        path_pop(c, old2);
        memset(c->tmp, 0, c->words * sizeof(uint64_t));
        old2 = path_key(c, "types");
        if ((rc = parse_types(c, types, c->tmp)) != MR_OK)
            return rc;
        path_pop(c, old2);
        for (t = 0; t < mr_fhir_types_count; t++) {
            if (!set_has(c->tmp, t))
                continue;
            if (deny)
                acts[t] = (uint8_t)(acts[t] & ~mask);
            else
                acts[t] = (uint8_t)(acts[t] | mask);
        }
        path_pop(c, old);
    }
    return MR_OK;
}

/* One list of hidden elements: "photo", or "value[x]" for every choice. */
static enum mr_err parse_hidden(struct ld *c, const struct mr_type *t,
                                const json_t *arr, struct hidden *h)
{
    char q[QUOTE_MAX + 16];
    enum mr_err rc;
    size_t i, j, k, old;
    json_t *v;

    if ((rc = want_list(c, arr)) != MR_OK)
        return rc;
    h->type = (size_t)(t - mr_fhir_types);
    h->names = mr_calloc(t->nelems, sizeof(*h->names));
    if (h->names == NULL)
        return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        size_t n, found = 0;

        old = path_index(c, i);
        if (s == NULL)
            return fail_type(c, "a string (an element name)");
        n = strlen(s);
        if (strcmp(s, "id") == 0 || strcmp(s, "meta") == 0)
            return fail(c,
                        "%s cannot be hidden: medrec needs it to handle "
                        "the resource",
                        quote(s, q));
        for (j = 0; j < t->nelems; j++) {
            const struct mr_elem *e = &t->elems[j];
            int match;

            if (n > 3 && strcmp(s + n - 3, "[x]") == 0)
                match = e->choice != NULL &&
                        strncmp(e->choice, s, n - 3) == 0 &&
                        e->choice[n - 3] == '\0';
            else
                match = strcmp(e->name, s) == 0;
            if (!match || strlen(e->name) >= ELEM_MAX)
                continue;
            found++;
            for (k = 0; k < h->n; k++)
                if (h->names[k] == e->name)
                    break;
            if (k == h->n)
                h->names[h->n++] = e->name;
        }
        if (found == 0)
            return fail(c, "%s is not an element of %s", quote(s, q), t->name);
        path_pop(c, old);
    }
    return MR_OK;
}

static enum mr_err parse_redact(struct ld *c, const json_t *obj, struct role *r)
{
    char q[QUOTE_MAX + 16];
    const struct mr_type *t;
    const char *tname;
    enum mr_err rc;
    size_t old;
    json_t *arr;

    if (!json_is_object(obj))
        return fail_type(c, "an object of type: [elements]");
    r->hidden = mr_calloc(json_object_size(obj), sizeof(*r->hidden));
    if (r->hidden == NULL)
        return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
    json_object_foreach((json_t *)obj, tname, arr)
    {
        old = path_key(c, tname);
        t = mr_fhir_type_find(tname);
        if (t == NULL || t->kind != MR_KIND_RESOURCE)
            return fail(c, "%s is not a resource type", quote(tname, q));
        rc = parse_hidden(c, t, arr, &r->hidden[r->nhidden]);
        r->nhidden++; /* counted even on failure: its names are freed */
        if (rc != MR_OK)
            return rc;
        path_pop(c, old);
    }
    return MR_OK;
}

static enum mr_err parse_privileges(struct ld *c, const json_t *arr,
                                    unsigned *privs)
{
    char q[QUOTE_MAX + 16];
    size_t i, old;
    unsigned k;
    json_t *v;

    if (!json_is_array(arr))
        return fail_type(c, "an array of privilege names");
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);

        old = path_index(c, i);
        if (s == NULL)
            return fail_type(c, "a string");
        for (k = 0; k < MR_PRIV__COUNT; k++)
            if (strcmp(s, privilege_names[k]) == 0)
                break;
        if (k == MR_PRIV__COUNT)
            return fail(c,
                        "%s is not a privilege (manage-users, "
                        "manage-policy, merge-patients, release-to-patient,"
                        " manage-interfaces)",
                        quote(s, q));
        *privs |= 1u << k;
        path_pop(c, old);
    }
    return MR_OK;
}

static enum mr_err role_description(struct ld *c, const json_t *v,
                                    struct role *r)
{
    return json_is_string(v) ? MR_OK : fail_type(c, "a string");
}

static enum mr_err role_allow(struct ld *c, const json_t *v, struct role *r)
{
    return parse_rules(c, v, r->acts, 0);
}

static enum mr_err role_deny(struct ld *c, const json_t *v, struct role *r)
{
    return parse_rules(c, v, r->acts, 1);
}

static enum mr_err role_labels(struct ld *c, const json_t *v, struct role *r)
{
    return parse_label_refs(c, v, &r->labels);
}

static enum mr_err role_glass(struct ld *c, const json_t *v, struct role *r)
{
    return parse_label_refs(c, v, &r->glass);
}

static enum mr_err role_hold(struct ld *c, const json_t *v, struct role *r)
{
    enum mr_err rc;
    size_t t;

    memset(c->tmp, 0, c->words * sizeof(uint64_t));
    if ((rc = parse_types(c, v, c->tmp)) != MR_OK)
        return rc;
    for (t = 0; t < mr_fhir_types_count; t++)
        if (set_has(c->tmp, t))
            r->acts[t] |= HOLD;
    return MR_OK;
}

static enum mr_err role_own(struct ld *c, const json_t *v, struct role *r)
{
    if (!json_is_boolean(v))
        return fail_type(c, "true or false");
    r->own = json_is_true(v);
    return MR_OK;
}

static enum mr_err role_privileges(struct ld *c, const json_t *v,
                                   struct role *r)
{
    return parse_privileges(c, v, &r->privs);
}

/* The members of a role, in the order they are applied: deny after allow
 * whatever their order in the file. */
static const struct {
    const char *key;
    enum mr_err (*parse)(struct ld *c, const json_t *v, struct role *r);
} role_members[] = {
    {"description", role_description},
    {"allow", role_allow},
    {"deny", role_deny},
    {"labels", role_labels},
    {"break_glass", role_glass},
    {"hold_until_released", role_hold},
    {"redact", parse_redact},
    {"own_compartment_only", role_own},
    {"privileges", role_privileges},
};

#define N_ROLE_MEMBERS (sizeof(role_members) / sizeof(role_members[0]))

static enum mr_err parse_role(struct ld *c, const json_t *obj, struct role *r)
{
    const char *keys[N_ROLE_MEMBERS + 1];
    const struct mr_type *audit;
    enum mr_err rc;
    size_t i, old;

    if (!json_is_object(obj))
        return fail_type(c, "an object");
    for (i = 0; i < N_ROLE_MEMBERS; i++)
        keys[i] = role_members[i].key;
    keys[N_ROLE_MEMBERS] = NULL;
    if ((rc = check_keys(c, obj, keys)) != MR_OK)
        return rc;
    if (json_object_get(obj, "allow") == NULL)
        return fail(c, "\"allow\" is missing");
    for (i = 0; i < N_ROLE_MEMBERS; i++) {
        const json_t *v = json_object_get(obj, role_members[i].key);

        if (v == NULL)
            continue;
        old = path_key(c, role_members[i].key);
        if ((rc = role_members[i].parse(c, v, r)) != MR_OK)
            return rc;
        path_pop(c, old);
    }
    /* The trail is written by medrec alone, whatever a policy says. */
    audit = mr_fhir_type_find("AuditEvent");
    if (audit != NULL)
        r->acts[audit - mr_fhir_types] &= (uint8_t)~ACT_WRITE;
    return MR_OK;
}

static int role_cmp(const void *a, const void *b)
{
    return strcmp(((const struct role *)a)->name,
                  ((const struct role *)b)->name);
}

static enum mr_err parse_roles(struct ld *c, const json_t *obj)
{
    struct mr_policy *p = c->p;
    const char *name;
    enum mr_err rc;
    size_t n, i, old;
    json_t *v;

    if (!json_is_object(obj))
        return fail_type(c, "an object of role name: {...}");
    n = json_object_size(obj);
    if (n == 0)
        return fail(c, "must define the roles");
    if (n > MR_POLICY_MAX_ROLES)
        return fail(c, "more than %d roles", MR_POLICY_MAX_ROLES);
    p->roles = mr_calloc(n, sizeof(*p->roles));
    p->acts = mr_calloc(n, mr_fhir_types_count);
    if (p->roles == NULL || p->acts == NULL)
        return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
    json_object_foreach((json_t *)obj, name, v)
    {
        struct role *r = &p->roles[p->nroles];

        old = path_key(c, name);
        if ((rc = check_name(c, name, "role")) != MR_OK)
            return rc;
        r->acts = p->acts + p->nroles * mr_fhir_types_count;
        r->name = mr_strdup(name);
        p->nroles++;
        if (r->name == NULL)
            return mr_diag_set(c->d, MR_ENOMEM, "policy: out of memory");
        if ((rc = parse_role(c, v, r)) != MR_OK)
            return rc;
        path_pop(c, old);
    }
    qsort(p->roles, p->nroles, sizeof(*p->roles), role_cmp);
    for (i = 0; i < sizeof(required_roles) / sizeof(required_roles[0]); i++)
        if (!mr_policy_role_known(p, required_roles[i]))
            return fail(c, "required role \"%s\" is missing",
                        required_roles[i]);
    /* Without it every patient would see every chart. */
    if (!mr_policy_own_compartment_only(p, "patient")) {
        path_key(c, "patient");
        path_key(c, "own_compartment_only");
        return fail(c, "must be true for the patient role");
    }
    return MR_OK;
}

static struct role *role_get(const struct mr_policy *p, const char *name);

static enum mr_err parse_system_tokens(struct ld *c, const json_t *arr)
{
    char q[QUOTE_MAX + 16];
    struct role *r;
    size_t i, old;
    json_t *v;

    if (!json_is_array(arr))
        return fail_type(c, "an array of role names");
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);

        old = path_index(c, i);
        if (s == NULL)
            return fail_type(c, "a string");
        r = role_get(c->p, s);
        if (r == NULL)
            return fail(c, "%s is not a role defined in policy.roles",
                        quote(s, q));
        r->system_token = 1;
        path_pop(c, old);
    }
    return MR_OK;
}

static enum mr_err parse_policy(struct ld *c, const json_t *root)
{
    static const char *const keys[] = {
        "version", "description",   "groups", "labels",
        "roles",   "system_tokens", NULL};
    const json_t *v;
    enum mr_err rc;
    size_t old;

    if (!json_is_object(root))
        return fail_type(c, "a JSON object");
    v = json_object_get(root, "version");
    if (v == NULL)
        return fail(c, "\"version\" is missing");
    old = path_key(c, "version");
    if (!json_is_integer(v))
        return fail_type(c, "an integer");
    if (json_integer_value(v) != MR_POLICY_VERSION)
        return fail(c,
                    "%" JSON_INTEGER_FORMAT
                    " is not supported (this medrec reads version %d)",
                    json_integer_value(v), MR_POLICY_VERSION);
    path_pop(c, old);
    if ((rc = check_keys(c, root, keys)) != MR_OK)
        return rc;
    v = json_object_get(root, "description");
    if (v != NULL && !json_is_string(v)) {
        path_key(c, "description");
        return fail_type(c, "a string");
    }
    if ((v = json_object_get(root, "groups")) != NULL) {
        old = path_key(c, "groups");
        if ((rc = parse_groups(c, v)) != MR_OK)
            return rc;
        path_pop(c, old);
    }
    if ((v = json_object_get(root, "labels")) != NULL) {
        old = path_key(c, "labels");
        if ((rc = parse_labels(c, v)) != MR_OK)
            return rc;
        path_pop(c, old);
    }
    if ((v = json_object_get(root, "roles")) == NULL)
        return fail(c, "\"roles\" is missing");
    old = path_key(c, "roles");
    if ((rc = parse_roles(c, v)) != MR_OK)
        return rc;
    path_pop(c, old);
    if ((v = json_object_get(root, "system_tokens")) != NULL) {
        old = path_key(c, "system_tokens");
        if ((rc = parse_system_tokens(c, v)) != MR_OK)
            return rc;
        path_pop(c, old);
    }
    return MR_OK;
}

enum mr_err mr_policy_load(const char *json, size_t len, struct mr_policy **out,
                           struct mr_diag *d)
{
    struct ld c;
    struct mr_policy *p = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    enum mr_err rc;
    size_t i;

    memset(&c, 0, sizeof(c));
    c.d = d;
    path_add(&c, "policy", 6);
    if (json == NULL)
        return mr_diag_set(d, MR_EINVALID, "policy: no document");
    if (len > MR_POLICY_MAX_BYTES)
        return mr_diag_set(d, MR_ETOOBIG,
                           "policy: %zu bytes is more than the limit of %u",
                           len, MR_POLICY_MAX_BYTES);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return mr_diag_set(d, MR_EJSON, "policy: line %d column %d: %s",
                           jerr.line, jerr.column, jerr.text);
    c.words = (mr_fhir_types_count + 63) / 64;
    c.tmp = mr_calloc(c.words, sizeof(uint64_t));
    p = mr_calloc(1, sizeof(*p));
    if (c.tmp == NULL || p == NULL) {
        rc = mr_diag_set(d, MR_ENOMEM, "policy: out of memory");
        goto done;
    }
    c.p = p;
    rc = parse_policy(&c, root);
    if (rc == MR_OK) {
        *out = p;
        p = NULL;
    }
done:
    for (i = 0; i < c.ngroups; i++)
        mr_free(c.groups[i].set);
    mr_free(c.tmp);
    mr_policy_free(p);
    json_decref(root);
    return rc;
}

enum mr_err mr_policy_load_default(struct mr_policy **out, struct mr_diag *d)
{
    return mr_policy_load(default_json, sizeof(default_json) - 1, out, d);
}

void mr_policy_free(struct mr_policy *p)
{
    size_t i, j;

    if (p == NULL)
        return;
    for (i = 0; i < p->nroles; i++) {
        for (j = 0; j < p->roles[i].nhidden; j++)
            mr_free(p->roles[i].hidden[j].names);
        mr_free(p->roles[i].hidden);
        mr_free(p->roles[i].name);
    }
    for (i = 0; i < p->nlabels; i++) {
        mr_free(p->labels[i].system);
        mr_free(p->labels[i].code);
    }
    mr_free(p->roles);
    mr_free(p->acts);
    mr_free(p->labels);
    mr_free(p);
}

/* ---- decisions -------------------------------------------------------- */

static struct role *role_get(const struct mr_policy *p, const char *name)
{
    size_t lo = 0, hi;

    if (p == NULL || name == NULL)
        return NULL;
    hi = p->nroles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(name, p->roles[mid].name);

        if (cmp == 0)
            return &p->roles[mid];
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* Index of a type in mr_fhir_types, or -1. Only resource types ever have
 * bits in a role's table, so other types need no check here. */
static long type_index(const char *type)
{
    const struct mr_type *t = mr_fhir_type_find(type);

    return t ? (long)(t - mr_fhir_types) : -1;
}

int mr_policy_role_known(const struct mr_policy *p, const char *role)
{
    return role_get(p, role) != NULL;
}

size_t mr_policy_role_count(const struct mr_policy *p)
{
    return p ? p->nroles : 0;
}

const char *mr_policy_role_name(const struct mr_policy *p, size_t i)
{
    if (p == NULL || i >= p->nroles)
        return NULL;
    return p->roles[i].name;
}

int mr_policy_allows(const struct mr_policy *p, const char *role,
                     enum mr_action act, const char *type)
{
    const struct role *r = role_get(p, role);
    long t;

    if (r == NULL || (unsigned)act >= MR_ACT__COUNT)
        return 0;
    t = type_index(type);
    if (t < 0)
        return 0;
    return (r->acts[t] & ACT_BIT(act)) != 0;
}

static int coding_is(const json_t *coding, const char *system, const char *code)
{
    const char *s = json_string_value(json_object_get(coding, "system"));
    const char *c = json_string_value(json_object_get(coding, "code"));

    return s != NULL && c != NULL && strcmp(s, system) == 0 &&
           strcmp(c, code) == 0;
}

/* OR into *need the labels in res's meta.security; 0 when meta or
 * meta.security is malformed (then nothing about res can be trusted). */
static int label_bits(const struct mr_policy *p, const json_t *res,
                      uint32_t *need)
{
    const json_t *meta, *sec, *coding;
    size_t i, j;

    if (!json_is_object(res))
        return 0;
    meta = json_object_get(res, "meta");
    if (meta == NULL)
        return 1;
    if (!json_is_object(meta))
        return 0;
    sec = json_object_get(meta, "security");
    if (sec == NULL)
        return 1;
    if (!json_is_array(sec))
        return 0;
    json_array_foreach(sec, i, coding)
    {
        if (!json_is_object(coding))
            return 0;
        for (j = 0; j < p->nlabels; j++)
            if (coding_is(coding, p->labels[j].system, p->labels[j].code))
                *need |= (uint32_t)1 << p->labels[j].bit;
    }
    return 1;
}

static int released(const json_t *res)
{
    const json_t *tags = json_object_get(json_object_get(res, "meta"), "tag");
    const json_t *coding;
    size_t i;

    json_array_foreach(tags, i,
                       coding) if (coding_is(coding, MR_RELEASE_TAG_SYSTEM,
                                             MR_RELEASE_TAG_CODE)) return 1;
    return 0;
}

int mr_policy_visible(const struct mr_policy *p, const char *role,
                      const char *type, const json_t *resource, int emergency,
                      int *used_emergency)
{
    const struct role *r = role_get(p, role);
    const char *rtype;
    const json_t *contained, *c;
    uint32_t need = 0, missing;
    size_t i;
    long t;

    if (used_emergency)
        *used_emergency = 0;
    if (r == NULL || !json_is_object(resource))
        return 0;
    rtype = json_string_value(json_object_get(resource, "resourceType"));
    if (type == NULL)
        type = rtype;
    else if (rtype != NULL && strcmp(rtype, type) != 0)
        return 0;
    t = type_index(type);
    if (t < 0 || (r->acts[t] & ACT_SEE) == 0)
        return 0;
    if ((r->acts[t] & HOLD) && !released(resource))
        return 0;
    if (!label_bits(p, resource, &need))
        return 0;
    contained = json_object_get(resource, "contained");
    if (contained != NULL) {
        if (!json_is_array(contained))
            return 0;
        json_array_foreach(contained, i,
                           c) if (!label_bits(p, c, &need)) return 0;
    }
    missing = need & ~r->labels;
    if (missing == 0)
        return 1;
    if (!emergency || (missing & ~r->glass) != 0)
        return 0;
    if (used_emergency)
        *used_emergency = 1;
    return 1;
}

static const struct hidden *hidden_of(const struct role *r, long t)
{
    size_t i;

    for (i = 0; i < r->nhidden; i++)
        if ((long)r->hidden[i].type == t)
            return &r->hidden[i];
    return NULL;
}

/* "_" + name, the companion of a primitive element. */
static const char *companion(const char *name, char buf[ELEM_MAX + 1])
{
    buf[0] = '_';
    memcpy(buf + 1, name, strlen(name) + 1); /* < ELEM_MAX, checked at load */
    return buf;
}

int mr_policy_redact(const struct mr_policy *p, const char *role,
                     const char *type, json_t *resource)
{
    const struct role *r = role_get(p, role);
    const struct hidden *h;
    char buf[ELEM_MAX + 1];
    int removed = 0;
    size_t i;

    if (r == NULL || !json_is_object(resource))
        return 0;
    h = hidden_of(r, type_index(type));
    if (h == NULL)
        return 0;
    for (i = 0; i < h->n; i++) {
        if (json_object_del(resource, h->names[i]) == 0)
            removed = 1;
        if (json_object_del(resource, companion(h->names[i], buf)) == 0)
            removed = 1;
    }
    if (removed)
        json_object_del(resource, "text");
    return removed;
}

int mr_policy_element_hidden(const struct mr_policy *p, const char *role,
                             const char *type, const char *element)
{
    const struct role *r = role_get(p, role);
    const struct hidden *h;
    size_t i;

    if (r == NULL)
        return 1;
    if (element == NULL)
        return 0;
    h = hidden_of(r, type_index(type));
    if (h == NULL)
        return 0;
    if (element[0] == '_')
        element++;
    for (i = 0; i < h->n; i++)
        if (strcmp(h->names[i], element) == 0)
            return 1;
    return 0;
}

/* Replace incoming[name] by a copy of current[name] (or nothing). */
static enum mr_err restore_one(json_t *incoming, const json_t *current,
                               const char *name)
{
    const json_t *v;
    json_t *copy;

    json_object_del(incoming, name);
    v = json_object_get(current, name);
    if (v == NULL)
        return MR_OK;
    copy = json_deep_copy(v);
    if (copy == NULL || json_object_set_new(incoming, name, copy) != 0)
        return MR_ENOMEM;
    return MR_OK;
}

enum mr_err mr_policy_restore_hidden(const struct mr_policy *p,
                                     const char *role, const char *type,
                                     json_t *incoming, const json_t *current)
{
    const struct role *r = role_get(p, role);
    const struct hidden *h;
    char buf[ELEM_MAX + 1];
    size_t i;

    if (r == NULL)
        return MR_EDENIED;
    if (!json_is_object(incoming))
        return MR_EINVALID;
    h = hidden_of(r, type_index(type));
    if (h == NULL)
        return MR_OK;
    if (!json_is_object(current))
        current = NULL;
    for (i = 0; i < h->n; i++) {
        if (restore_one(incoming, current, h->names[i]) != MR_OK ||
            restore_one(incoming, current, companion(h->names[i], buf)) !=
                MR_OK)
            return MR_ENOMEM;
    }
    return MR_OK;
}

int mr_policy_own_compartment_only(const struct mr_policy *p, const char *role)
{
    const struct role *r = role_get(p, role);

    return r == NULL || r->own;
}

int mr_policy_may_break_glass(const struct mr_policy *p, const char *role)
{
    const struct role *r = role_get(p, role);

    return r != NULL && r->glass != 0;
}

int mr_policy_system_token_ok(const struct mr_policy *p, const char *role)
{
    const struct role *r = role_get(p, role);

    return r != NULL && r->system_token;
}

int mr_policy_has_privilege(const struct mr_policy *p, const char *role,
                            enum mr_privilege priv)
{
    const struct role *r = role_get(p, role);

    if (r == NULL || (unsigned)priv >= MR_PRIV__COUNT)
        return 0;
    return (r->privs >> priv) & 1;
}

size_t mr_policy_hidden_codings(const struct mr_policy *p, const char *role,
                                const char **systems, const char **codes,
                                size_t max)
{
    const struct role *r = role_get(p, role);
    size_t i, n = 0;

    for (i = 0; p && i < p->nlabels; i++) {
        if (r && (r->labels & (1u << p->labels[i].bit)))
            continue;
        if (n < max) {
            systems[n] = p->labels[i].system;
            codes[n] = p->labels[i].code;
        }
        n++;
    }
    return n;
}

int mr_policy_held(const struct mr_policy *p, const char *role,
                   const char *type)
{
    const struct role *r = role_get(p, role);
    long t = type_index(type);

    return r && t >= 0 && (r->acts[t] & HOLD) != 0;
}

int mr_policy_redacts(const struct mr_policy *p, const char *role,
                      const char *type)
{
    const struct role *r = role_get(p, role);

    return r && hidden_of(r, type_index(type)) != NULL;
}
