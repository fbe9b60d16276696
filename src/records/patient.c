#include "records/patient.h"
#include "core/time.h"

#include <string.h>

int mr_phone_valid(const char *v)
{
    int digits = 0;
    const char *p;

    for (p = v; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
        } else if (*p == 'x' || *p == 'X') {
            /* extension: digits only after it */
            for (p++; *p; p++)
                if ((*p < '0' || *p > '9') && *p != ' ')
                    return 0;
            break;
        } else if (!strchr("+()-. ", *p)) {
            return 0;
        } else if (*p == '+' && p != v) {
            return 0;
        }
    }
    return digits >= 7 && digits <= 15;
}

int mr_email_valid(const char *v)
{
    const char *at = strchr(v, '@');

    if (!at || at == v || strchr(at + 1, '@') || !strchr(at + 1, '.'))
        return 0;
    for (; *v; v++)
        if (*v == ' ')
            return 0;
    return at[1] != '.' && v[-1] != '.';
}

static int has_any(const json_t *o, const char *const *keys)
{
    for (; *keys; keys++)
        if (json_object_get(o, *keys))
            return 1;
    return 0;
}

enum mr_err mr_patient_check(const json_t *p, int64_t now_ms, struct mr_diag *d)
{
    static const char *const addr_parts[] = {"line",  "city",       "district",
                                             "state", "postalCode", "country",
                                             "text",  NULL};
    static const char *const name_parts[] = {"family", "given", "text", NULL};
    const json_t *v, *e;
    struct mr_daterange birth = {0, 0}, death;
    size_t i;
    const char *s;

    v = json_object_get(p, "name");
    if (!json_array_size(v) &&
        !json_array_size(json_object_get(p, "identifier")))
        return mr_diag_set(d, MR_EINVALID,
                           "Patient: a name or an identifier is required");
    json_array_foreach(v, i, e)
    {
        if (!has_any(e, name_parts))
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.name[%zu]: a name needs a family "
                               "name, a given name or text",
                               i);
    }
    s = json_string_value(json_object_get(p, "birthDate"));
    if (s) {
        if (mr_date_parse(s, strlen(s), MR_DATE_DATE, &birth))
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.birthDate: \"%s\" is not a valid "
                               "date",
                               s);
        if (birth.lo > now_ms)
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.birthDate: \"%s\" is in the future", s);
        if (birth.lo < mr_days_from_civil(1850, 1, 1) * 86400000LL)
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.birthDate: \"%s\" is before 1850", s);
    }
    s = json_string_value(json_object_get(p, "deceasedDateTime"));
    if (s && !mr_date_parse(s, strlen(s), MR_DATE_DATETIME, &death)) {
        if (birth.hi && death.hi <= birth.lo)
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.deceasedDateTime: \"%s\" is before "
                               "the birth date",
                               s);
        if (death.lo > now_ms)
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.deceasedDateTime: \"%s\" is in the "
                               "future",
                               s);
    }
    json_array_foreach(json_object_get(p, "telecom"), i, e)
    {
        const char *sys = json_string_value(json_object_get(e, "system"));
        const char *val = json_string_value(json_object_get(e, "value"));
        if (!sys || !val)
            continue;
        if ((!strcmp(sys, "phone") || !strcmp(sys, "fax") ||
             !strcmp(sys, "sms")) &&
            !mr_phone_valid(val))
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.telecom[%zu].value: \"%s\" is not a "
                               "valid phone number",
                               i, val);
        if (!strcmp(sys, "email") && !mr_email_valid(val))
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.telecom[%zu].value: \"%s\" is not a "
                               "valid e-mail address",
                               i, val);
    }
    json_array_foreach(json_object_get(p, "address"), i, e)
    {
        if (!has_any(e, addr_parts))
            return mr_diag_set(d, MR_EINVALID,
                               "Patient.address[%zu]: an address needs a "
                               "line, city, state, postal code, country or "
                               "text",
                               i);
    }
    return MR_OK;
}
