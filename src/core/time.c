#include "core/time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MS_PER_SEC 1000LL
#define MS_PER_MIN (60 * MS_PER_SEC)
#define MS_PER_HOUR (60 * MS_PER_MIN)
#define MS_PER_DAY (24 * MS_PER_HOUR)

int64_t mr_time_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Floor division and modulo, for instants before 1970. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/*
 * Howard Hinnant's days_from_civil / civil_from_days
 * (http://howardhinnant.github.io/date_algorithms.html): eras of 400
 * years, years starting on March 1 so the leap day is the last of a year.
 */
int64_t mr_days_from_civil(int y, unsigned m, unsigned d)
{
    int64_t yy = (int64_t)y - (m <= 2);
    int64_t era = floor_div(yy, 400);
    int64_t yoe = yy - era * 400;                         /* [0, 399] */
    int64_t mp = m > 2 ? (int64_t)m - 3 : (int64_t)m + 9; /* [0, 11] */
    int64_t doy = (153 * mp + 2) / 5 + (int64_t)d - 1;    /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;  /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

void mr_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    int64_t era, doe, yoe, doy, mp, yy;
    unsigned mm;

    z += 719468;
    era = floor_div(z, 146097);
    doe = z - era * 146097; /* [0, 146096] */
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    yy = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* [0, 365] */
    mp = (5 * doy + 2) / 153;                      /* [0, 11] */
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    mm = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *m = mm;
    *y = (int)(yy + (mm <= 2));
}

void mr_time_format(int64_t ms, char out[32])
{
    int64_t days = floor_div(ms, MS_PER_DAY);
    int64_t rem = ms - days * MS_PER_DAY; /* [0, MS_PER_DAY) */
    int y;
    unsigned m, d;
    int h, mi, s, frac;

    mr_civil_from_days(days, &y, &m, &d);
    h = (int)(rem / MS_PER_HOUR);
    mi = (int)(rem / MS_PER_MIN % 60);
    s = (int)(rem / MS_PER_SEC % 60);
    frac = (int)(rem % 1000);
    /* Years outside 0..9999 cannot be written as FHIR; clamp so the
     * output always fits and stays well-formed. */
    if (y < 0) {
        y = 0;
        m = d = 1;
        h = mi = s = frac = 0;
    } else if (y > 9999) {
        y = 9999;
        m = 12;
        d = 31;
        h = 23;
        mi = s = 59;
        frac = 999;
    }
    snprintf(out, 32, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", y % 10000, m % 100,
             d % 100, h % 100, mi % 100, s % 100, frac % 1000);
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30,
                                          31, 31, 30, 31, 30, 31};
    if (m == 2 && is_leap(y))
        return 29;
    return dim[m - 1];
}

/* Exactly `count` ASCII digits at s[*pos]; advances *pos. */
static int take_digits(const char *s, size_t n, size_t *pos, int count,
                       int *val)
{
    int v = 0;

    if (n - *pos < (size_t)count)
        return 0;
    for (int i = 0; i < count; i++) {
        char c = s[*pos + (size_t)i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    *pos += (size_t)count;
    *val = v;
    return 1;
}

static int take_char(const char *s, size_t n, size_t *pos, char c)
{
    if (*pos < n && s[*pos] == c) {
        (*pos)++;
        return 1;
    }
    return 0;
}

/* Parser options: which of the FHIR forms are accepted. */
enum {
    DP_DATE_ONLY = 1,     /* no time part at all */
    DP_NEED_TIME = 2,     /* full date and time required (instant) */
    DP_ZONE_OPTIONAL = 4, /* search values: no zone means UTC */
    DP_MINUTES_OK = 8     /* search values: hh:mm without seconds */
};

/*
 * hh:mm:ss(.s+)? at s[*pos]; with DP_MINUTES_OK the seconds are optional.
 * Sets *ms to milliseconds since midnight and *span to the precision.
 */
static int parse_clock(const char *s, size_t n, size_t *pos, int flags,
                       int64_t *ms, int64_t *span)
{
    int h, mi, sec = 0, frac = 0, ndig = 0;

    if (!take_digits(s, n, pos, 2, &h) || h > 23)
        return 0;
    if (!take_char(s, n, pos, ':') || !take_digits(s, n, pos, 2, &mi) ||
        mi > 59)
        return 0;
    *span = MS_PER_MIN;
    if (take_char(s, n, pos, ':')) {
        /* 60 is a leap second; it rolls into the next minute. */
        if (!take_digits(s, n, pos, 2, &sec) || sec > 60)
            return 0;
        *span = MS_PER_SEC;
        if (take_char(s, n, pos, '.')) {
            while (*pos < n && s[*pos] >= '0' && s[*pos] <= '9') {
                if (ndig < 3)
                    frac = frac * 10 + (s[*pos] - '0');
                ndig++;
                (*pos)++;
            }
            if (ndig == 0)
                return 0;
            *span = ndig == 1 ? 100 : ndig == 2 ? 10 : 1;
            for (int i = ndig; i < 3; i++)
                frac *= 10;
        }
    } else if (!(flags & DP_MINUTES_OK)) {
        return 0;
    }
    *ms = h * MS_PER_HOUR + mi * MS_PER_MIN + sec * MS_PER_SEC + frac;
    return 1;
}

/* Z | (+|-)hh:mm with hh:mm in 00:00..13:59 or 14:00; offset in ms. */
static int parse_zone(const char *s, size_t n, size_t *pos, int64_t *off)
{
    int sign, h, mi;

    if (take_char(s, n, pos, 'Z')) {
        *off = 0;
        return 1;
    }
    if (take_char(s, n, pos, '+'))
        sign = 1;
    else if (take_char(s, n, pos, '-'))
        sign = -1;
    else
        return 0;
    if (!take_digits(s, n, pos, 2, &h) || !take_char(s, n, pos, ':') ||
        !take_digits(s, n, pos, 2, &mi))
        return 0;
    if (mi > 59 || h > 14 || (h == 14 && mi != 0))
        return 0;
    *off = sign * (h * MS_PER_HOUR + mi * MS_PER_MIN);
    return 1;
}

static enum mr_err parse_date(const char *s, size_t n, int flags,
                              struct mr_daterange *out)
{
    size_t pos = 0;
    int y, mo = 0, d = 0;
    int64_t lo, hi, clock = 0, span = 0, off = 0;

    if (!s)
        return MR_EINVALID;
    /* Year: four digits, 0001..9999 (the R4 regex excludes only 0000). */
    if (!take_digits(s, n, &pos, 4, &y) || y == 0)
        return MR_EINVALID;
    if (take_char(s, n, &pos, '-')) {
        if (!take_digits(s, n, &pos, 2, &mo) || mo < 1 || mo > 12)
            return MR_EINVALID;
        if (take_char(s, n, &pos, '-')) {
            if (!take_digits(s, n, &pos, 2, &d) || d < 1 ||
                (unsigned)d > days_in_month(y, (unsigned)mo))
                return MR_EINVALID;
        }
    }
    if (d && !(flags & DP_DATE_ONLY) && take_char(s, n, &pos, 'T')) {
        if (!parse_clock(s, n, &pos, flags, &clock, &span))
            return MR_EINVALID;
        if (pos < n || !(flags & DP_ZONE_OPTIONAL)) {
            if (!parse_zone(s, n, &pos, &off))
                return MR_EINVALID;
        }
    } else if (flags & DP_NEED_TIME) {
        return MR_EINVALID;
    }
    if (pos != n)
        return MR_EINVALID;

    if (span) {
        lo = mr_days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_DAY +
             clock - off;
        hi = lo + span;
    } else if (d) {
        lo = mr_days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_DAY;
        hi = lo + MS_PER_DAY;
    } else if (mo) {
        lo = mr_days_from_civil(y, (unsigned)mo, 1) * MS_PER_DAY;
        hi = mo == 12 ? mr_days_from_civil(y + 1, 1, 1) * MS_PER_DAY
                      : mr_days_from_civil(y, (unsigned)mo + 1, 1) * MS_PER_DAY;
    } else {
        lo = mr_days_from_civil(y, 1, 1) * MS_PER_DAY;
        hi = mr_days_from_civil(y + 1, 1, 1) * MS_PER_DAY;
    }
    if (out) {
        out->lo = lo;
        out->hi = hi;
    }
    return MR_OK;
}

enum mr_err mr_date_parse(const char *s, size_t n, enum mr_date_kind kind,
                          struct mr_daterange *out)
{
    size_t pos = 0;
    int64_t clock, span;

    if (!s)
        return MR_EINVALID;
    switch (kind) {
    case MR_DATE_DATE:
        return parse_date(s, n, DP_DATE_ONLY, out);
    case MR_DATE_DATETIME:
        return parse_date(s, n, 0, out);
    case MR_DATE_INSTANT:
        return parse_date(s, n, DP_NEED_TIME, out);
    case MR_DATE_TIME:
        if (!parse_clock(s, n, &pos, 0, &clock, &span) || pos != n)
            return MR_EINVALID;
        if (out) {
            out->lo = clock;
            out->hi = clock + span;
        }
        return MR_OK;
    }
    return MR_EINVALID;
}

enum mr_err mr_date_parse_search(const char *s, size_t n,
                                 struct mr_daterange *out)
{
    return parse_date(s, n, DP_ZONE_OPTIONAL | DP_MINUTES_OK, out);
}

int mr_age_years(const char *birth_date, int64_t now_ms)
{
    struct mr_daterange r;
    int by, ny, age;
    unsigned bm, bd, nm, nd;
    size_t n;

    if (!birth_date)
        return -1;
    n = strnlen(birth_date, 32);
    if (mr_date_parse(birth_date, n, MR_DATE_DATE, &r) != MR_OK)
        return -1;
    if (r.lo > now_ms)
        return -1;
    /* A partial date is taken at its first day ("1984" is 1984-01-01). */
    mr_civil_from_days(floor_div(r.lo, MS_PER_DAY), &by, &bm, &bd);
    mr_civil_from_days(floor_div(now_ms, MS_PER_DAY), &ny, &nm, &nd);
    age = ny - by;
    if (nm < bm || (nm == bm && nd < bd))
        age--;
    return age;
}
