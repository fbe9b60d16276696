/* Unit tests for core/time: civil-date arithmetic, formatting, FHIR date
 * parsing and validation, ages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/time.h"

#define DAY_MS 86400000LL

static int valid(const char *s, enum mr_date_kind kind)
{
    return mr_date_parse(s, strlen(s), kind, NULL) == MR_OK;
}

static struct mr_daterange range(const char *s, enum mr_date_kind kind)
{
    struct mr_daterange r = {-1, -1};
    assert_int_equal(mr_date_parse(s, strlen(s), kind, &r), MR_OK);
    return r;
}

static void test_days_from_civil(void **state)
{
    (void)state;
    assert_int_equal(mr_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(mr_days_from_civil(1970, 1, 2), 1);
    assert_int_equal(mr_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(mr_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(mr_days_from_civil(2000, 2, 29), 11016);
    assert_int_equal(mr_days_from_civil(1, 1, 1), -719162);
    assert_int_equal(mr_days_from_civil(9999, 12, 31), 2932896);
}

static void test_civil_roundtrip(void **state)
{
    (void)state;
    /* Every day from 1600 to 2400: round trip and consecutive. */
    int64_t first = mr_days_from_civil(1600, 1, 1);
    int64_t last = mr_days_from_civil(2400, 12, 31);
    int py = 1599;
    unsigned pm = 12, pd = 31;
    for (int64_t z = first; z <= last; z++) {
        int y;
        unsigned m, d;
        mr_civil_from_days(z, &y, &m, &d);
        assert_int_equal(mr_days_from_civil(y, m, d), z);
        if (d == 1) {
            assert_true(m == pm % 12 + 1);
            assert_true(y == py || (m == 1 && y == py + 1));
        } else {
            assert_int_equal(d, pd + 1);
        }
        py = y;
        pm = m;
        pd = d;
    }
}

static void test_format(void **state)
{
    char buf[32];
    (void)state;
    mr_time_format(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    mr_time_format(1795773315123LL, buf);
    assert_string_equal(buf, "2026-11-27T09:55:15.123Z");
    mr_time_format(-1, buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    mr_time_format(951782400000LL, buf); /* leap day */
    assert_string_equal(buf, "2000-02-29T00:00:00.000Z");
}

static void test_now(void **state)
{
    (void)state;
    int64_t now = mr_time_now_ms();
    /* After 2020-01-01 and before 2200. */
    assert_true(now > 1577836800000LL);
    assert_true(now < mr_days_from_civil(2200, 1, 1) * DAY_MS);
}

static void test_date_valid(void **state)
{
    (void)state;
    assert_true(valid("1984", MR_DATE_DATE));
    assert_true(valid("1984-03", MR_DATE_DATE));
    assert_true(valid("1984-03-09", MR_DATE_DATE));
    assert_true(valid("2000-02-29", MR_DATE_DATE));
    assert_true(valid("2024-02-29", MR_DATE_DATE));
    assert_true(valid("0001-01-01", MR_DATE_DATE));
    assert_true(valid("1984-01-31", MR_DATE_DATE));
    assert_true(valid("1984-04-30", MR_DATE_DATE));
    assert_true(valid("9999-12-31", MR_DATE_DATE));
}

static void test_date_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "1984-13-09", "1983-02-29", "1900-02-29", "2023-02-29",
        "1984-04-31", "1984-06-31", "1984-00-10", "1984-01-00",
        "1984-01-32", "0000",       "0000-01-01", "84",
        "19840",      "1984-1-09",  "1984-01-9",  "1984/01/09",
        "1984-13",    "",           " 1984",      "1984 ",
        "1984-",      "1984-03-",   "１９８４",   "1984-03-09T10:00:00Z",
        "+1984",      "1984-02-30",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i], MR_DATE_DATE))
            fail_msg("accepted invalid date \"%s\"", bad[i]);
    }
    /* Embedded NUL: only the given length counts. */
    assert_int_equal(mr_date_parse("1984\0-01", 8, MR_DATE_DATE, NULL),
                     MR_EINVALID);
    assert_int_equal(mr_date_parse("1984-01-09", 4, MR_DATE_DATE, NULL), MR_OK);
}

static void test_datetime(void **state)
{
    (void)state;
    assert_true(valid("1984", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09T10:00:00Z", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09T10:00:00+01:00", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09T10:00:00.5-05:30", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09T23:59:60Z", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09T10:00:00+14:00", MR_DATE_DATETIME));
    assert_true(valid("1984-03-09T10:00:00.123456789Z", MR_DATE_DATETIME));

    static const char *bad[] = {
        "1984-03-09T10:00:00", /* missing zone */
        "1984-03-09T10:00Z",   /* missing seconds */
        "1984-03-09T24:00:00Z",
        "1984-03-09T10:60:00Z",
        "1984-03-09T10:00:61Z",
        "1984-03-09T10:00:00+14:30",
        "1984-03-09T10:00:00+15:00",
        "1984-03-09T10:00:00+0100",
        "1984-03-09T10:00:00.Z",
        "1984-03-09T10:00:00z",
        "1984-03-09 10:00:00Z",
        "1984-03T10:00:00Z",
        "1984T10:00:00Z",
        "1984-03-09T",
        "1984-03-09T10:00:00Z ",
        "1984-02-30T10:00:00Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (valid(bad[i], MR_DATE_DATETIME))
            fail_msg("accepted invalid dateTime \"%s\"", bad[i]);
    }
}

static void test_instant_and_time(void **state)
{
    (void)state;
    assert_true(valid("2015-02-07T13:28:17.239+02:00", MR_DATE_INSTANT));
    assert_true(valid("2015-02-07T13:28:17Z", MR_DATE_INSTANT));
    assert_false(valid("2015-02-07", MR_DATE_INSTANT));
    assert_false(valid("2015-02", MR_DATE_INSTANT));
    assert_false(valid("2015-02-07T13:28:17", MR_DATE_INSTANT));
    assert_false(valid("2015-02-07T13:28Z", MR_DATE_INSTANT));

    assert_true(valid("13:28:17", MR_DATE_TIME));
    assert_true(valid("00:00:00.5", MR_DATE_TIME));
    assert_true(valid("23:59:59", MR_DATE_TIME));
    assert_false(valid("24:00:00", MR_DATE_TIME));
    assert_false(valid("13:28", MR_DATE_TIME));
    assert_false(valid("13:28:17Z", MR_DATE_TIME));
    assert_false(valid("1:28:17", MR_DATE_TIME));
    assert_false(valid("13:28:17.", MR_DATE_TIME));
}

static void test_ranges(void **state)
{
    (void)state;
    int64_t d1984 = mr_days_from_civil(1984, 1, 1) * DAY_MS;
    int64_t d1985 = mr_days_from_civil(1985, 1, 1) * DAY_MS;
    struct mr_daterange r;

    r = range("1984", MR_DATE_DATE);
    assert_int_equal(r.lo, d1984);
    assert_int_equal(r.hi, d1985);

    r = range("1984-02", MR_DATE_DATE);
    assert_int_equal(r.lo, mr_days_from_civil(1984, 2, 1) * DAY_MS);
    assert_int_equal(r.hi, mr_days_from_civil(1984, 3, 1) * DAY_MS);

    r = range("1984-12", MR_DATE_DATE);
    assert_int_equal(r.hi, d1985);

    r = range("1984-03-09", MR_DATE_DATE);
    assert_int_equal(r.lo, mr_days_from_civil(1984, 3, 9) * DAY_MS);
    assert_int_equal(r.hi - r.lo, DAY_MS);

    /* Zone offsets are applied: 10:00+01:00 is 09:00Z. */
    int64_t day = mr_days_from_civil(1984, 3, 9) * DAY_MS;
    r = range("1984-03-09T10:00:00+01:00", MR_DATE_DATETIME);
    assert_int_equal(r.lo, day + 9 * 3600000LL);
    assert_int_equal(r.hi, r.lo + 1000);
    r = range("1984-03-09T01:30:00-05:30", MR_DATE_DATETIME);
    assert_int_equal(r.lo, day + 7 * 3600000LL);

    /* Fractions: ms precision gives 1 ms, fewer digits a wider span. */
    r = range("1984-03-09T00:00:00.123Z", MR_DATE_INSTANT);
    assert_int_equal(r.lo, day + 123);
    assert_int_equal(r.hi, day + 124);
    r = range("1984-03-09T00:00:00.5Z", MR_DATE_INSTANT);
    assert_int_equal(r.lo, day + 500);
    assert_int_equal(r.hi, day + 600);
    r = range("1984-03-09T00:00:00.123999Z", MR_DATE_INSTANT);
    assert_int_equal(r.lo, day + 123);
    assert_int_equal(r.hi, day + 124);

    /* Before the epoch. */
    r = range("1969-12-31", MR_DATE_DATE);
    assert_int_equal(r.lo, -DAY_MS);
    assert_int_equal(r.hi, 0);

    /* Times: milliseconds since midnight. */
    r = range("01:00:00", MR_DATE_TIME);
    assert_int_equal(r.lo, 3600000);
    assert_int_equal(r.hi, 3601000);
}

static void test_search_dates(void **state)
{
    (void)state;
    struct mr_daterange r;
    int64_t day = mr_days_from_civil(2024, 1, 5) * DAY_MS;

    assert_int_equal(mr_date_parse_search("2024-01-05T10:30", 16, &r), MR_OK);
    assert_int_equal(r.lo, day + 10 * 3600000LL + 30 * 60000LL);
    assert_int_equal(r.hi - r.lo, 60000);
    assert_int_equal(mr_date_parse_search("2024-01-05T10:30:00", 19, &r),
                     MR_OK);
    assert_int_equal(r.hi - r.lo, 1000);
    assert_int_equal(mr_date_parse_search("2024-01-05T10:30+02:00", 22, &r),
                     MR_OK);
    assert_int_equal(r.lo, day + 8 * 3600000LL + 30 * 60000LL);
    assert_int_equal(mr_date_parse_search("2024-01-05", 10, &r), MR_OK);
    assert_int_equal(r.hi - r.lo, DAY_MS);
    assert_int_equal(mr_date_parse_search("2024-01-05T10", 13, &r),
                     MR_EINVALID);
    assert_int_equal(mr_date_parse_search("2024-13", 7, &r), MR_EINVALID);
}

static void test_age(void **state)
{
    (void)state;
    int64_t now = mr_days_from_civil(2024, 3, 9) * DAY_MS + 5000;
    assert_int_equal(mr_age_years("1984-03-09", now), 40);
    assert_int_equal(mr_age_years("1984-03-10", now), 39);
    assert_int_equal(mr_age_years("1984-02-29", now), 40);
    assert_int_equal(mr_age_years("2024-03-09", now), 0);
    assert_int_equal(mr_age_years("2024-03-10", now), -1);
    assert_int_equal(mr_age_years("1984", now), 40);
    assert_int_equal(mr_age_years("1984-04", now), 39);
    assert_int_equal(mr_age_years("1984-13-01", now), -1);
    assert_int_equal(mr_age_years("", now), -1);
    assert_int_equal(mr_age_years(NULL, now), -1);
    /* Born on Feb 29: a year older on Mar 1 of a non-leap year. */
    int64_t mar1 = mr_days_from_civil(2025, 3, 1) * DAY_MS;
    int64_t feb28 = mr_days_from_civil(2025, 2, 28) * DAY_MS;
    assert_int_equal(mr_age_years("2000-02-29", mar1), 25);
    assert_int_equal(mr_age_years("2000-02-29", feb28), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_from_civil),
        cmocka_unit_test(test_civil_roundtrip),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_now),
        cmocka_unit_test(test_date_valid),
        cmocka_unit_test(test_date_invalid),
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_instant_and_time),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_search_dates),
        cmocka_unit_test(test_age),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
