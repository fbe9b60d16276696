#include "medrec/medrec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const messages[] = {
#define MR__ERR_MSG(name, msg) msg,
    MR_ERRORS(MR__ERR_MSG)
#undef MR__ERR_MSG
};

static const char *const names[] = {
#define MR__ERR_NAME(name, msg) #name,
    MR_ERRORS(MR__ERR_NAME)
#undef MR__ERR_NAME
};

const char *mr_strerror(enum mr_err err)
{
    if ((unsigned)err >= MR__ERR_COUNT)
        return "unknown error";
    return messages[err];
}

const char *mr_errname(enum mr_err err)
{
    if ((unsigned)err >= MR__ERR_COUNT)
        return "UNKNOWN";
    return names[err];
}

enum mr_err mr_diag_set(struct mr_diag *d, enum mr_err err, const char *fmt,
                        ...)
{
    va_list ap;

    if (!d)
        return err;
    d->code = err;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    return err;
}

void mr_diag_clear(struct mr_diag *d)
{
    if (!d)
        return;
    d->code = MR_OK;
    d->msg[0] = '\0';
}

const char *mr_diag_msg(const struct mr_diag *d)
{
    if (!d)
        return "";
    return d->msg[0] ? d->msg : mr_strerror(d->code);
}
