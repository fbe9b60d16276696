/*
 * The access policy ("minimum necessary") and the engine that applies it.
 *
 * The policy is data: a versioned JSON document (the shipped one is
 * src/security/policy_default.json, compiled in; docs/policy.md describes
 * the format) saying, per role, which actions it may perform on which
 * resource types, which sensitivity labels it may see, which elements are
 * removed before it sees a resource, and which types it sees only once
 * released. mr_policy_load validates it strictly and compiles it into
 * tables; every decision afterwards is a lookup.
 *
 * The engine is pure: no I/O, no clock, no globals. It does not know who
 * the patient is: the compartment restriction of the patient role, the
 * audit entry for emergency access and the decision to pass `emergency`
 * at all are the caller's (the records service's).
 *
 * A loaded policy is immutable, so one may be shared by any number of
 * threads. Unknown roles, unknown types and out-of-range actions are
 * always refused.
 */
#ifndef MR_SECURITY_POLICY_H
#define MR_SECURITY_POLICY_H

#include "medrec/medrec.h"

#include <jansson.h>
#include <stddef.h>

/* The policy format version this medrec reads ("version": 1). */
#define MR_POLICY_VERSION 1
/* Largest policy document accepted, in bytes. */
#define MR_POLICY_MAX_BYTES (1u << 20)
/* Limits of one policy (the label limit is the width of a bit mask). */
#define MR_POLICY_MAX_ROLES 64
#define MR_POLICY_MAX_GROUPS 64
#define MR_POLICY_MAX_LABELS 32
/* Longest role, group or label name. */
#define MR_POLICY_MAX_NAME 32

/* The meta.tag that releases a resource to the patient role. */
#define MR_RELEASE_TAG_SYSTEM "urn:medrec:release"
#define MR_RELEASE_TAG_CODE "released"

enum mr_action {
    MR_ACT_READ,
    MR_ACT_SEARCH,
    MR_ACT_CREATE,
    MR_ACT_UPDATE,
    MR_ACT_DELETE, /* writes a tombstone version */
    MR_ACT_HISTORY,
    MR_ACT_EXPORT, /* bulk */
    MR_ACT__COUNT
};

/* Permissions that are not about a resource type. */
enum mr_privilege {
    MR_PRIV_MANAGE_USERS,  /* "manage-users" */
    MR_PRIV_MANAGE_POLICY, /* "manage-policy" */
    MR_PRIV_MERGE,         /* "merge-patients": merge duplicate charts */
    MR_PRIV_RELEASE,       /* "release-to-patient": set the release tag */
    MR_PRIV_INTERFACES,    /* "manage-interfaces": HL7 senders, the
                              interface log (raw messages), replays */
    MR_PRIV__COUNT
};

struct mr_policy;

/* The policy name of an action ("read") or privilege ("manage-users");
 * static, never NULL ("?" when out of range). */
const char *mr_policy_action_name(enum mr_action act);
const char *mr_policy_privilege_name(enum mr_privilege priv);

/* The shipped policy (src/security/policy_default.json) as compiled in:
 * static bytes, not NUL-counted in *len (but NUL-terminated). len may be
 * NULL. */
const char *mr_policy_default_json(size_t *len);

/*
 * Parse, validate and compile a policy document of len bytes. Refuses
 * anything it does not understand, with d->msg naming the path, e.g.
 *   policy.roles.coder.allow[3].types[0]: "Obsrvation" is not a resource
 *   type
 * MR_EJSON for malformed JSON, MR_ETOOBIG past MR_POLICY_MAX_BYTES,
 * MR_EINVALID for anything else wrong, MR_ENOMEM. On success *out is a new
 * policy the caller frees with mr_policy_free; on failure *out is
 * untouched.
 */
enum mr_err mr_policy_load(const char *json, size_t len, struct mr_policy **out,
                           struct mr_diag *d) MR_WUR;

/* mr_policy_load of the shipped policy. */
enum mr_err mr_policy_load_default(struct mr_policy **out,
                                   struct mr_diag *d) MR_WUR;

/* Free a policy; NULL is a no-op. */
void mr_policy_free(struct mr_policy *p);

/* 1 if the policy defines role, else 0. */
int mr_policy_role_known(const struct mr_policy *p, const char *role);

/* The defined roles, sorted by name: mr_policy_role_name(p, i) for i below
 * mr_policy_role_count(p) (NULL past the end). The names belong to p. */
size_t mr_policy_role_count(const struct mr_policy *p);
const char *mr_policy_role_name(const struct mr_policy *p, size_t i);

/*
 * May role perform act on resources of type at all, before looking at one?
 * A table lookup (role by binary search, type by its index in the
 * generated FHIR tables). Create, update and delete of AuditEvent are
 * refused whatever the policy says: the trail is written by medrec only.
 */
int mr_policy_allows(const struct mr_policy *p, const char *role,
                     enum mr_action act, const char *type);

/*
 * May role see this one resource (read, search hit, history version,
 * export line)? Requires that the role may read, search, see the history
 * of or export the type at all; that every sensitivity label in the
 * resource's meta.security (and in the meta.security of its contained
 * resources) is one the role holds; and, for types the role holds until
 * released, the release tag in meta.tag. A malformed meta is not visible.
 * type may be NULL: the resource's resourceType is used; a resourceType
 * that differs from type is not visible.
 *
 * emergency: the caller's break-the-glass flag. It adds, for this one
 * decision, the labels the role may break the glass for (nothing for a
 * role without that right). *used_emergency (if not NULL) is set to 1
 * when the resource is visible only because of it, so the caller can
 * audit the access as emergency access, else to 0. The release rule is
 * never lifted by emergency.
 */
int mr_policy_visible(const struct mr_policy *p, const char *role,
                      const char *type, const json_t *resource, int emergency,
                      int *used_emergency);

/*
 * Remove from resource the elements role may not see in type (and their
 * "_name" primitive companions); when anything was removed, the narrative
 * (text) goes too, since it may repeat what was removed. Top-level
 * elements only. Returns 1 when something was removed, else 0.
 */
int mr_policy_redact(const struct mr_policy *p, const char *role,
                     const char *type, json_t *resource);

/* 1 if the policy removes element (a JSON name: "photo", "_birthDate" or
 * "valueQuantity") of type before role sees it; also 1 for an unknown
 * role. A search on a parameter whose path starts at a hidden element
 * would disclose it: callers refuse those. */
int mr_policy_element_hidden(const struct mr_policy *p, const char *role,
                             const char *type, const char *element);

/*
 * For a create or update by role: the elements role cannot see are not its
 * to set or erase. Removes them from incoming and copies them back from
 * current (the stored version; NULL for a create). MR_ENOMEM if a copy
 * fails (incoming is then partly restored and must not be stored).
 */
enum mr_err mr_policy_restore_hidden(const struct mr_policy *p,
                                     const char *role, const char *type,
                                     json_t *incoming,
                                     const json_t *current) MR_WUR;

/* Does role only ever see its own compartment (the patient role)? The
 * caller enforces the compartment. 1 for an unknown role. */
int mr_policy_own_compartment_only(const struct mr_policy *p, const char *role);

/* May role break the glass (pass emergency)? 0 for an unknown role. */
int mr_policy_may_break_glass(const struct mr_policy *p, const char *role);

/* May a system token (an interface feed, not a person) carry role?
 * A system token never breaks the glass. */
int mr_policy_system_token_ok(const struct mr_policy *p, const char *role);

/* Does role hold priv? 0 for an unknown role. */
int mr_policy_has_privilege(const struct mr_policy *p, const char *role,
                            enum mr_privilege priv);

/* The codings (system, code) of every label `role` does not hold without
 * emergency access: searches exclude resources carrying any of them.
 * Fills at most max; returns how many there are. */
size_t mr_policy_hidden_codings(const struct mr_policy *p, const char *role,
                                const char **systems, const char **codes,
                                size_t max);

/* Is `type` held until released (meta.tag urn:medrec:release|released)
 * for `role`? */
int mr_policy_held(const struct mr_policy *p, const char *role,
                   const char *type);

/* Does `role` have elements of `type` hidden (mr_policy_redact may change
 * a resource of that type)? */
int mr_policy_redacts(const struct mr_policy *p, const char *role,
                      const char *type);

#endif
