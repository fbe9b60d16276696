/* Unit tests for src/hl7: the ER7 parser and its accessors, escapes,
 * character sets, limits and error messages; ACK building; MLLP framing;
 * and every shared sample message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>

#include "core/alloc.h"
#include "hl7/ack.h"
#include "hl7/mllp.h"
#include "hl7/parse.h"

/* ---- helpers --------------------------------------------------------------
 */

static void parse_ok(struct mr_hl7_msg *m, const char *s)
{
    struct mr_diag d;

    mr_diag_clear(&d);
    if (mr_hl7_parse(m, s, strlen(s), NULL, NULL, &d) != MR_OK)
        fail_msg("parse failed: %s", d.msg);
}

/* Parse must fail with code and exactly msg; returns the location. */
static struct mr_hl7_loc expect_fail_n(const char *s, size_t n,
                                       const struct mr_hl7_limits *lim,
                                       enum mr_err code, const char *msg)
{
    struct mr_hl7_msg m;
    struct mr_hl7_loc where;
    struct mr_diag d;
    enum mr_err err;

    memset(&m, 0x5a, sizeof(m));
    memset(&where, 0, sizeof(where));
    mr_diag_clear(&d);
    err = mr_hl7_parse(&m, s, n, lim, &where, &d);
    if (err != code)
        fail_msg("parse: got %s (%s), want %s", mr_errname(err), d.msg,
                 mr_errname(code));
    if (strcmp(d.msg, msg) != 0)
        fail_msg("message \"%s\", want \"%s\"", d.msg, msg);
    assert_int_equal(d.code, code);
    /* untouched on failure */
    assert_int_equal(m.nsegs, 0x5a5a5a5a5a5a5a5aull);
    return where;
}

static struct mr_hl7_loc expect_fail(const char *s, enum mr_err code,
                                     const char *msg)
{
    return expect_fail_n(s, strlen(s), NULL, code, msg);
}

static void check_slice(struct mr_hl7_slice v, const char *want)
{
    if (v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0)
        fail_msg("got \"%.*s\", want \"%s\"", (int)v.len, v.ptr, want);
}

static void check_get(const struct mr_hl7_msg *m, const char *seg, size_t occ,
                      size_t f, size_t r, size_t c, size_t s, const char *want)
{
    struct mr_hl7_slice v;

    assert_int_equal(mr_hl7_get(m, seg, occ, f, r, c, s, &v), MR_OK);
    if (v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0)
        fail_msg("%s[%zu]-%zu.%zu.%zu.%zu = \"%.*s\", want \"%s\"", seg, occ, f,
                 r, c, s, (int)v.len, v.ptr, want);
}

static void check_unescape(const struct mr_hl7_delims *dl,
                           enum mr_hl7_charset cs, const char *in,
                           const char *want)
{
    struct mr_buf b = MR_BUF_INIT(4096);

    assert_int_equal(mr_hl7_unescape(dl, cs, in, strlen(in), &b), MR_OK);
    if (strcmp(b.ptr, want) != 0 || b.len != strlen(want))
        fail_msg("unescape(\"%s\") = \"%s\", want \"%s\"", in, b.ptr, want);
    mr_buf_release(&b);
}

static const char ADT[] =
    "MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20260301120000+0100||"
    "ADT^A01^ADT_A01|CTRL-1|P|2.5.1\r"
    "EVN|A01|20260301115900\r"
    "PID|1||123^^^HOSP&1.2.3&ISO^MR~456^^^OTHER^PI||DOE^JOHN^Q||19700101|M|"
    "\"\"|\r"
    "ZPD|custom|x^y\r"
    "NK1|1|DOE^JANE\r"
    "NK1|2|DOE^JIM\r"
    "PV1|1|I|W1^101^A\r";

/* ---- parsing --------------------------------------------------------------
 */

static void test_parse_header(void **state)
{
    struct mr_hl7_msg m;
    const struct mr_hl7_header *h;

    (void)state;
    parse_ok(&m, ADT);
    h = &m.hdr;
    assert_int_equal(m.nsegs, 7);
    assert_string_equal(m.segs[0].id, "MSH");
    assert_string_equal(m.segs[3].id, "ZPD");
    check_slice(h->sending_app, "SENDAPP");
    check_slice(h->sending_facility, "SENDFAC");
    check_slice(h->receiving_app, "RECVAPP");
    check_slice(h->receiving_facility, "RECVFAC");
    check_slice(h->datetime, "20260301120000+0100");
    check_slice(h->msg_type, "ADT");
    check_slice(h->trigger, "A01");
    check_slice(h->structure, "ADT_A01");
    check_slice(h->control_id, "CTRL-1");
    check_slice(h->processing_id, "P");
    check_slice(h->version, "2.5.1");
    assert_int_equal(h->version_minor, 5);
    check_slice(h->charset_name, "");
    assert_int_equal(h->charset, MR_HL7_CS_DEFAULT);
    assert_int_equal(m.delims.field, '|');
    assert_int_equal(m.delims.component, '^');
    assert_int_equal(m.delims.repetition, '~');
    assert_int_equal(m.delims.escape, '\\');
    assert_int_equal(m.delims.subcomponent, '&');
    assert_int_equal(m.delims.truncation, '\0');
    check_slice(m.segs[2].text, "PID|1||123^^^HOSP&1.2.3&ISO^MR~456^^^OTHER^"
                                "PI||DOE^JOHN^Q||19700101|M|\"\"|");
    mr_hl7_release(&m);
    mr_hl7_release(&m); /* twice is harmless */
}

/* MSH-1 is the field separator, MSH-2 the encoding characters; both stay
 * whole. MSH-3 is the first field after them. */
static void test_msh_numbering(void **state)
{
    struct mr_hl7_msg m;
    const struct mr_hl7_seg *msh;

    (void)state;
    parse_ok(&m, ADT);
    msh = mr_hl7_find(&m, "MSH", 1);
    assert_non_null(msh);
    check_get(&m, "MSH", 1, 0, 0, 0, 0, "MSH");
    check_get(&m, "MSH", 1, 1, 0, 0, 0, "|");
    check_get(&m, "MSH", 1, 1, 1, 1, 1, "|");
    check_get(&m, "MSH", 1, 2, 0, 0, 0, "^~\\&");
    check_get(&m, "MSH", 1, 2, 1, 1, 0, "^~\\&"); /* never split */
    check_get(&m, "MSH", 1, 2, 2, 0, 0, "");
    check_get(&m, "MSH", 1, 2, 1, 2, 0, "");
    assert_int_equal(mr_hl7_count(&m, msh, 2, 0, 0), 1);
    assert_int_equal(mr_hl7_count(&m, msh, 2, 1, 0), 1);
    check_get(&m, "MSH", 1, 3, 0, 0, 0, "SENDAPP");
    check_get(&m, "MSH", 1, 7, 1, 1, 0, "20260301120000+0100");
    check_get(&m, "MSH", 1, 8, 0, 0, 0, "");
    check_get(&m, "MSH", 1, 9, 0, 0, 0, "ADT^A01^ADT_A01");
    check_get(&m, "MSH", 1, 9, 1, 2, 0, "A01");
    check_get(&m, "MSH", 1, 10, 0, 0, 0, "CTRL-1");
    check_get(&m, "MSH", 1, 12, 0, 0, 0, "2.5.1");
    check_get(&m, "MSH", 1, 13, 0, 0, 0, ""); /* past the end */
    assert_int_equal(msh->nfields, 12);
    /* in other segments field 1 is the first after the id */
    check_get(&m, "EVN", 1, 1, 0, 0, 0, "A01");
    check_get(&m, "EVN", 1, 0, 0, 0, 0, "EVN");
    mr_hl7_release(&m);
}

static void test_repetitions_components(void **state)
{
    struct mr_hl7_msg m;
    const struct mr_hl7_seg *pid;
    struct mr_hl7_slice v;

    (void)state;
    parse_ok(&m, ADT);
    pid = mr_hl7_find(&m, "PID", 1);
    assert_non_null(pid);
    check_get(&m, "PID", 1, 3, 0, 0, 0,
              "123^^^HOSP&1.2.3&ISO^MR~456^^^OTHER^PI");
    assert_int_equal(mr_hl7_count(&m, pid, 3, 0, 0), 2);
    check_get(&m, "PID", 1, 3, 1, 0, 0, "123^^^HOSP&1.2.3&ISO^MR");
    check_get(&m, "PID", 1, 3, 2, 0, 0, "456^^^OTHER^PI");
    check_get(&m, "PID", 1, 3, 3, 0, 0, "");
    assert_int_equal(mr_hl7_count(&m, pid, 3, 1, 0), 5);
    assert_int_equal(mr_hl7_count(&m, pid, 3, 2, 0), 5);
    check_get(&m, "PID", 1, 3, 1, 1, 0, "123");
    check_get(&m, "PID", 1, 3, 1, 2, 0, "");
    check_get(&m, "PID", 1, 3, 1, 4, 0, "HOSP&1.2.3&ISO");
    assert_int_equal(mr_hl7_count(&m, pid, 3, 1, 4), 3);
    check_get(&m, "PID", 1, 3, 1, 4, 1, "HOSP");
    check_get(&m, "PID", 1, 3, 1, 4, 2, "1.2.3");
    check_get(&m, "PID", 1, 3, 1, 4, 3, "ISO");
    check_get(&m, "PID", 1, 3, 1, 4, 4, "");
    check_get(&m, "PID", 1, 3, 1, 5, 1, "MR"); /* no subcomponents: all */
    check_get(&m, "PID", 1, 3, 2, 4, 0, "OTHER");
    check_get(&m, "PID", 1, 5, 1, 2, 0, "JOHN");
    check_get(&m, "PID", 1, 5, 1, 9, 0, "");
    check_get(&m, "PID", 1, 40, 1, 1, 1, "");
    assert_int_equal(mr_hl7_count(&m, pid, 2, 0, 0), 0); /* empty field */
    assert_int_equal(mr_hl7_count(&m, pid, 40, 0, 0), 0);
    /* several occurrences */
    assert_int_equal(mr_hl7_occurrences(&m, "NK1"), 2);
    check_get(&m, "NK1", 2, 2, 1, 2, 0, "JIM");
    assert_int_equal(mr_hl7_get(&m, "NK1", 3, 1, 0, 0, 0, &v), MR_ENOTFOUND);
    assert_int_equal(mr_hl7_get(&m, "OBX", 1, 1, 0, 0, 0, &v), MR_ENOTFOUND);
    assert_int_equal(mr_hl7_get(&m, "PID", 0, 1, 0, 0, 0, &v), MR_ENOTFOUND);
    /* a level after a 0 must be 0 */
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 3, 0, 1, 0, &v), MR_EINVALID);
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 3, 1, 0, 1, &v), MR_EINVALID);
    mr_hl7_release(&m);
}

static void test_null_and_empty(void **state)
{
    struct mr_hl7_msg m;
    struct mr_hl7_slice v;

    (void)state;
    parse_ok(&m, ADT);
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 9, 0, 0, 0, &v), MR_OK);
    assert_true(mr_hl7_is_null(v)); /* "" : delete the value */
    check_slice(v, "\"\"");
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 9, 1, 1, 1, &v), MR_OK);
    assert_true(mr_hl7_is_null(v));
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 6, 0, 0, 0, &v), MR_OK);
    assert_false(mr_hl7_is_null(v)); /* empty: no value sent */
    assert_int_equal(v.len, 0);
    assert_non_null(v.ptr);
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 10, 0, 0, 0, &v), MR_OK);
    assert_int_equal(v.len, 0);
    assert_false(mr_hl7_is_null(v));
    mr_hl7_release(&m);
}

static void test_z_segments(void **state)
{
    struct mr_hl7_msg m;

    (void)state;
    parse_ok(&m, ADT);
    assert_int_equal(mr_hl7_occurrences(&m, "ZPD"), 1);
    check_get(&m, "ZPD", 1, 1, 0, 0, 0, "custom");
    check_get(&m, "ZPD", 1, 2, 1, 2, 0, "y");
    assert_ptr_equal(mr_hl7_find(&m, "ZPD", 1), &m.segs[3]);
    mr_hl7_release(&m);
}

static void test_custom_delimiters(void **state)
{
    struct mr_hl7_msg m;

    (void)state;
    /* '#' as field separator: '|' is then ordinary text */
    parse_ok(&m, "MSH#^~\\&#APP#FAC#RAPP#RFAC#20260301##ADT^A04#C2#P#2.4\r"
                 "PID#1##7^^^H^MR##Smith^Ann#A|B\r");
    assert_int_equal(m.delims.field, '#');
    check_get(&m, "MSH", 1, 1, 0, 0, 0, "#");
    check_get(&m, "MSH", 1, 2, 0, 0, 0, "^~\\&");
    check_slice(m.hdr.trigger, "A04");
    check_slice(m.hdr.control_id, "C2");
    check_get(&m, "PID", 1, 3, 1, 5, 0, "MR");
    check_get(&m, "PID", 1, 5, 1, 2, 0, "Ann");
    check_get(&m, "PID", 1, 6, 0, 0, 0, "A|B");
    mr_hl7_release(&m);

    /* nHapi's sample: field '^', component '~', repetition '|' */
    parse_ok(&m, "MSH^~|\\&^SENDING^200M^RECEIVING^200^20120918173931-0500^^"
                 "ADT~A24^2003582144^T^2.4^^^AL^AL^\r"
                 "PID^1^^11111~~~FOO&&0363~NI|22~~~BAR^^SMITH~JOHN~TEST\r");
    check_slice(m.hdr.msg_type, "ADT");
    check_slice(m.hdr.trigger, "A24");
    check_slice(m.hdr.accept_ack, "AL");
    check_slice(m.hdr.app_ack, "AL");
    check_get(&m, "PID", 1, 3, 1, 4, 1, "FOO");
    check_get(&m, "PID", 1, 3, 1, 4, 3, "0363");
    check_get(&m, "PID", 1, 3, 2, 1, 0, "22");
    check_get(&m, "PID", 1, 5, 1, 2, 0, "JOHN");
    mr_hl7_release(&m);

    /* five encoding characters: the truncation character (v2.7+) */
    parse_ok(&m, "MSH|^~\\&#|A|B|C|D|2026||ADT^A01|C3|P|2.7\rPID|1||x#\r");
    assert_int_equal(m.delims.truncation, '#');
    check_get(&m, "MSH", 1, 2, 0, 0, 0, "^~\\&#");
    check_get(&m, "PID", 1, 3, 0, 0, 0, "x#");
    mr_hl7_release(&m);
}

static void test_segment_separators(void **state)
{
    static const char *const variants[] = {
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1\rPV1|1\r",
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\nPID|1\nPV1|1\n",
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\r\nPID|1\r\nPV1|1\r\n",
        "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\r\n\r\nPID|1\r\n\r\nPV1|1",
        "\r\nMSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\nPID|1\r  \nPV1|1\r\r",
        "\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1\rPV1|1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        struct mr_hl7_msg m;
        parse_ok(&m, variants[i]);
        assert_int_equal(m.nsegs, 3);
        assert_string_equal(m.segs[1].id, "PID");
        assert_string_equal(m.segs[2].id, "PV1");
        check_slice(m.segs[0].fields[11], "2.5"); /* MSH-12: no CR kept */
        check_get(&m, "PV1", 1, 1, 0, 0, 0, "1");
        check_slice(m.hdr.control_id, "C1");
        assert_int_equal(m.segs[0].text.ptr[0], 'M');
        mr_hl7_release(&m);
    }
}

static void test_charsets(void **state)
{
    struct mr_hl7_msg m;
    struct mr_buf b = MR_BUF_INIT(1024);
    struct mr_hl7_slice v;

    (void)state;
    parse_ok(&m, "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||ASCII\r");
    assert_int_equal(m.hdr.charset, MR_HL7_CS_ASCII);
    check_slice(m.hdr.charset_name, "ASCII");
    mr_hl7_release(&m);

    parse_ok(&m, "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||UNICODE "
                 "UTF-8\rPID|1||||M\xC3\xBCller\r");
    assert_int_equal(m.hdr.charset, MR_HL7_CS_UTF8);
    mr_hl7_release(&m);

    /* Latin-1 bytes are accepted when declared, and come out as UTF-8 */
    parse_ok(&m, "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||8859/1\r"
                 "PID|1||||M\xFCller^Ren\\XE9\\\r");
    assert_int_equal(m.hdr.charset, MR_HL7_CS_LATIN1);
    assert_int_equal(mr_hl7_get(&m, "PID", 1, 5, 0, 0, 0, &v), MR_OK);
    assert_int_equal(
        mr_hl7_unescape(&m.delims, m.hdr.charset, v.ptr, v.len, &b), MR_OK);
    assert_string_equal(b.ptr, "M\xC3\xBCller^Ren\xC3\xA9");
    mr_hl7_release(&m);
    mr_buf_release(&b);

    /* UTF-8 with no MSH-18 passes; so does UTF-8 under ASCII */
    parse_ok(&m, "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1||||\xC3\x81N"
                 "\r");
    assert_int_equal(m.hdr.charset, MR_HL7_CS_DEFAULT);
    mr_hl7_release(&m);
    parse_ok(&m, "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||ASCII\rPID|1"
                 "||||\xC3\x81N\r");
    mr_hl7_release(&m);
    /* "" in MSH-18 is no character set */
    parse_ok(&m, "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||\"\"\r");
    assert_int_equal(m.hdr.charset, MR_HL7_CS_DEFAULT);
    mr_hl7_release(&m);

    /* refused rather than mangled */
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||UNICODE "
                "UTF-16\r",
                MR_EUNSUPPORTED,
                "MSH-18: character set \"UNICODE UTF-16\" is not supported "
                "(ASCII, 8859/1 or UNICODE UTF-8)");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||ISO IR87\r",
                MR_EUNSUPPORTED,
                "MSH-18: character set \"ISO IR87\" is not supported "
                "(ASCII, 8859/1 or UNICODE UTF-8)");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||ASCII~ISO "
                "IR87\r",
                MR_EUNSUPPORTED,
                "MSH-18: more than one character set (code extensions) is "
                "not supported");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1||||M\xFCller"
                "\r",
                MR_EINVALID,
                "MSH-18: no character set is declared and segment 2 (PID) is "
                "neither ASCII nor UTF-8 (declare 8859/1 for Latin-1)");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||ASCII\rPID|1"
                "||||M\xFCller\r",
                MR_EINVALID,
                "MSH-18: ASCII is declared but segment 2 (PID) is neither "
                "ASCII nor UTF-8");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5||||||UNICODE "
                "UTF-8\rPID|1||||M\xFCller\r",
                MR_EINVALID,
                "MSH-18: UNICODE UTF-8 is declared but segment 2 (PID) is "
                "not valid UTF-8");
}

/* ---- escapes --------------------------------------------------------------
 */

static void test_unescape(void **state)
{
    const struct mr_hl7_delims *dl = &mr_hl7_default_delims;
    struct mr_hl7_delims custom = {'#', '!', '*', '$', '%', '@'};

    (void)state;
    check_unescape(dl, MR_HL7_CS_DEFAULT, "plain", "plain");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "", "");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f",
                   "a|b^c&d~e\\f");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "line 1\\.br\\line 2",
                   "line 1\nline 2");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\X0D0A\\", "\r\n");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "caf\\XC3A9\\", "caf\xC3\xA9");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\X41\\\\X4243\\", "ABC");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\Xc3a9\\", "\xC3\xA9");
    /* unknown or unusable escapes stay visible as they were */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\H\\bold\\N\\", "\\H\\bold\\N\\");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "a\\.sp\\b", "a\\.sp\\b");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\Zlocal\\", "\\Zlocal\\");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\C2842\\x", "\\C2842\\x");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\X4\\", "\\X4\\");   /* odd */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\XZZ\\", "\\XZZ\\"); /* not hex */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\X\\", "\\X\\");     /* empty */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "a\\X00\\b", "a\\X00\\b"); /* NUL */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\XE9\\", "\\XE9\\"); /* bad UTF-8 */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\P\\", "\\P\\");     /* no trunc. */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "end\\", "end\\"); /* unterminated */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "a\\Fb", "a\\Fb");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\\\", "\\\\");
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\\FF\\", "\\FF\\");
    /* the null stays two quotes: callers test mr_hl7_is_null first */
    check_unescape(dl, MR_HL7_CS_DEFAULT, "\"\"", "\"\"");
    /* Latin-1: bytes and \X\ both converted to UTF-8 */
    check_unescape(dl, MR_HL7_CS_LATIN1, "\xE9\\XE9\\", "\xC3\xA9\xC3\xA9");
    check_unescape(dl, MR_HL7_CS_LATIN1, "\\H\\\xE9", "\\H\\\xC3\xA9");
    /* another delimiter set */
    check_unescape(&custom, MR_HL7_CS_DEFAULT, "$F$$S$$T$$R$$E$$P$|^&~\\",
                   "#!%*$@|^&~\\");
    check_unescape(&custom, MR_HL7_CS_DEFAULT, "a$.br$b", "a\nb");
}

static void test_unescape_limit(void **state)
{
    struct mr_buf b = MR_BUF_INIT(8);

    (void)state;
    assert_int_equal(mr_buf_adds(&b, "ab"), MR_OK);
    assert_int_equal(mr_hl7_unescape(&mr_hl7_default_delims, MR_HL7_CS_DEFAULT,
                                     "123456", 6, &b),
                     MR_OK);
    assert_string_equal(b.ptr, "ab123456");
    /* one byte too many: refused, and the buffer is as it was */
    mr_buf_reset(&b);
    assert_int_equal(mr_buf_adds(&b, "ab"), MR_OK);
    assert_int_equal(mr_hl7_unescape(&mr_hl7_default_delims, MR_HL7_CS_DEFAULT,
                                     "12345\\F\\6", 9, &b),
                     MR_ETOOBIG);
    assert_string_equal(b.ptr, "ab");
    assert_int_equal(b.len, 2);
    assert_int_equal(mr_hl7_unescape(&mr_hl7_default_delims, MR_HL7_CS_LATIN1,
                                     "\xE9\xE9\xE9", 3, &b),
                     MR_OK); /* 6 bytes: fits */
    assert_int_equal(b.len, 8);
    mr_buf_release(&b);
}

static void test_escape(void **state)
{
    struct mr_buf b = MR_BUF_INIT(1024), back = MR_BUF_INIT(1024);
    const char *in = "a|b^c~d\\e&f\ng\r\nh\ri\x01j\tk";

    (void)state;
    assert_int_equal(mr_hl7_escape(&mr_hl7_default_delims, in, strlen(in), &b),
                     MR_OK);
    assert_string_equal(b.ptr, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\.br\\g\\.br\\"
                               "h\\X0D\\i\\X01\\j\tk");
    /* and back (line ends become \n) */
    assert_int_equal(mr_hl7_unescape(&mr_hl7_default_delims, MR_HL7_CS_DEFAULT,
                                     b.ptr, b.len, &back),
                     MR_OK);
    assert_string_equal(back.ptr, "a|b^c~d\\e&f\ng\nh\ri\x01j\tk");
    mr_buf_release(&b);
    mr_buf_release(&back);

    /* too small: unchanged */
    {
        struct mr_buf s = MR_BUF_INIT(5);
        assert_int_equal(mr_hl7_escape(&mr_hl7_default_delims, "ab|", 3, &s),
                         MR_OK);
        assert_string_equal(s.ptr, "ab\\F\\");
        mr_buf_reset(&s);
        assert_int_equal(mr_hl7_escape(&mr_hl7_default_delims, "ab|c", 4, &s),
                         MR_ETOOBIG);
        assert_int_equal(s.len, 0);
        assert_int_equal(mr_hl7_escape(&mr_hl7_default_delims, "abc|", 4, &s),
                         MR_ETOOBIG);
        assert_int_equal(s.len, 0);
        mr_buf_release(&s);
    }
}

/* ---- errors -----------------------------------------------------------------
 */

static void test_errors(void **state)
{
    struct mr_hl7_loc w;
    char longid[400];

    (void)state;
    w = expect_fail("", MR_EINVALID, "message is empty");
    assert_int_equal(w.code, MR_HL7_ERR_SEGMENT_SEQUENCE);
    expect_fail("\r\n \r\n", MR_EINVALID, "message is empty");
    expect_fail("\xEF\xBB\xBF", MR_EINVALID, "message is empty");
    expect_fail("BHS|^~\\&|A\rMSH|^~\\&|A|B|C|D|1||ADT^A01|C|P|2.5\r",
                MR_EINVALID,
                "segment 1: message must start with MSH, not BHS (split the "
                "batch into messages first)");
    expect_fail("PID|1\r", MR_EINVALID,
                "segment 1: message must start with MSH, not PID");
    expect_fail("\x0bMSH|^~\\&|", MR_EINVALID,
                "segment 1: message must start with MSH, found "
                "\"\\x0BMSH|^~\\x5C\"");
    expect_fail("MSH", MR_EINVALID, "MSH-1: field separator is missing");
    expect_fail("MSH0^~\\&0", MR_EINVALID,
                "MSH-1: field separator '0' is not a printable, "
                "non-alphanumeric character");
    expect_fail("MSH \r", MR_EINVALID,
                "MSH-1: field separator 0x20 is not a printable, "
                "non-alphanumeric character");
    w = expect_fail("MSH|^|||||||^A|||2.2\r", MR_EINVALID,
                    "MSH-2: encoding characters must be 4 characters (5 with "
                    "the truncation character), found 1");
    assert_string_equal(w.seg, "MSH");
    assert_int_equal(w.field, 2);
    expect_fail("MSH|^~\\&#!|A\r", MR_EINVALID,
                "MSH-2: encoding characters must be 4 characters (5 with the "
                "truncation character), found 6");
    expect_fail("MSH|0000|||||||000|||\r", MR_EINVALID,
                "MSH-2: component character '0' must be a printable, "
                "non-alphanumeric character other than '\"'");
    expect_fail("MSH|^~\\\"|A\r", MR_EINVALID,
                "MSH-2: subcomponent character '\"' must be a printable, "
                "non-alphanumeric character other than '\"'");
    expect_fail("MSH|^~|&|A\r", MR_EINVALID,
                "MSH-2: encoding characters must be 4 characters (5 with the "
                "truncation character), found 2");
    expect_fail("MSH|^~\\^|A\r", MR_EINVALID,
                "MSH-2: subcomponent character '^' is also the component "
                "character");
    expect_fail("MSH#^~#&#A\r", MR_EINVALID,
                "MSH-2: encoding characters must be 4 characters (5 with the "
                "truncation character), found 2");

    w = expect_fail("MSH|^~\\&|A|B|C|D|2026||^A01|C1|P|2.5\r", MR_EINVALID,
                    "MSH-9: message type is required");
    assert_string_equal(w.seg, "MSH");
    assert_int_equal(w.seq, 1);
    assert_int_equal(w.field, 9);
    assert_int_equal(w.code, MR_HL7_ERR_REQUIRED_MISSING);
    expect_fail("MSH|^~\\&|A|B|C|D|2026||\"\"|C1|P|2.5\r", MR_EINVALID,
                "MSH-9: message type is required");
    expect_fail("MSH|^~\\&|A|B|C|D|2026\r", MR_EINVALID,
                "MSH-9: message type is required");
    w = expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\r", MR_EINVALID,
                    "MSH-10: control id is required");
    assert_int_equal(w.field, 10);
    memset(longid, 'x', 200);
    snprintf(longid + 200, sizeof(longid) - 200, "|P|2.5\r");
    {
        char msg[600];
        snprintf(msg, sizeof(msg), "MSH|^~\\&|A|B|C|D|2026||ADT^A01|%s",
                 longid);
        w = expect_fail(msg, MR_EINVALID,
                        "MSH-10: control id is 200 characters; the limit is "
                        "199");
        assert_int_equal(w.code, MR_HL7_ERR_VALUE_TOO_LONG);
        /* 199 is fine */
        snprintf(msg, sizeof(msg), "MSH|^~\\&|A|B|C|D|2026||ADT^A01|%s",
                 longid + 1);
        struct mr_hl7_msg m;
        parse_ok(&m, msg);
        assert_int_equal(m.hdr.control_id.len, 199);
        mr_hl7_release(&m);
    }
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P\r", MR_EINVALID,
                "MSH-12: version is required");
    w = expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.2\r",
                    MR_EUNSUPPORTED,
                    "MSH-12: version \"2.2\" is not supported (2.3 to 2.8)");
    assert_int_equal(w.code, MR_HL7_ERR_UNSUPPORTED_VERSION);
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.9\r", MR_EUNSUPPORTED,
                "MSH-12: version \"2.9\" is not supported (2.3 to 2.8)");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|3.0\r", MR_EUNSUPPORTED,
                "MSH-12: version \"3.0\" is not supported (2.3 to 2.8)");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5.100\r",
                MR_EUNSUPPORTED,
                "MSH-12: version \"2.5.100\" is not supported (2.3 to 2.8)");

    w = expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rEVN|A01\r"
                    "PID|1\rxyz|1\r",
                    MR_EINVALID,
                    "segment 4: does not start with a 3-character segment "
                    "id");
    assert_int_equal(w.code, MR_HL7_ERR_SEGMENT_SEQUENCE);
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPI|1\r", MR_EINVALID,
                "segment 2: does not start with a 3-character segment id");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPIDX|1\r",
                MR_EINVALID,
                "segment 2: does not start with a 3-character segment id");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\r 1|\r", MR_EINVALID,
                "segment 2: does not start with a 3-character segment id");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1\r"
                "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C2|P|2.5\r",
                MR_EINVALID,
                "segment 3: a second MSH starts another message; one message "
                "is parsed at a time");
    expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1\rBTS|1\r",
                MR_EINVALID,
                "segment 3: BTS belongs to a batch envelope; split the batch "
                "into messages first");
    w = expect_fail("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1\rOBX|1\r"
                    "OBX|2|TX|||a\x07"
                    "b\r",
                    MR_EINVALID,
                    "segment 4 (OBX), field 5: control character \\x07 is "
                    "not allowed (escape it as \\X07\\)");
    assert_string_equal(w.seg, "OBX");
    assert_int_equal(w.seq, 2);
    assert_int_equal(w.field, 5);
    {
        static const char nul[] =
            "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1|\0\r";
        expect_fail_n(nul, sizeof(nul) - 1, NULL, MR_EINVALID,
                      "segment 2 (PID), field 2: control character \\x00 is "
                      "not allowed (escape it as \\X00\\)");
    }
    expect_fail("MSH|^~\\&|A\x1c|B|C|D|2026||ADT^A01|C1|P|2.5\r", MR_EINVALID,
                "segment 1 (MSH), field 3: control character \\x1C is not "
                "allowed (escape it as \\X1C\\)");
}

static void test_limits(void **state)
{
    struct mr_hl7_limits lim = {MR_HL7_MAX_BYTES, MR_HL7_MAX_SEGMENTS,
                                MR_HL7_MAX_FIELDS};
    const char *ok = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1|P|2.5\rPID|1|2|3\r"
                     "PV1|1\r";
    struct mr_hl7_msg m;
    struct mr_diag d;
    struct mr_hl7_loc w;
    char *big;

    (void)state;
    lim.max_bytes = strlen(ok);
    assert_int_equal(mr_hl7_parse(&m, ok, strlen(ok), &lim, NULL, &d), MR_OK);
    mr_hl7_release(&m);
    lim.max_bytes = strlen(ok) - 1;
    expect_fail_n(ok, strlen(ok), &lim, MR_ETOOBIG,
                  "message is 56 bytes; the limit is 55 bytes");
    lim.max_bytes = MR_HL7_MAX_BYTES;

    lim.max_segments = 3;
    assert_int_equal(mr_hl7_parse(&m, ok, strlen(ok), &lim, NULL, &d), MR_OK);
    mr_hl7_release(&m);
    lim.max_segments = 2;
    w = expect_fail_n(ok, strlen(ok), &lim, MR_ETOOBIG,
                      "segment 3: more than 2 segments (limit)");
    assert_int_equal(w.code, MR_HL7_ERR_INTERNAL);
    lim.max_segments = MR_HL7_MAX_SEGMENTS;

    lim.max_fields = 12; /* MSH has 12 with MSH-1 */
    assert_int_equal(mr_hl7_parse(&m, ok, strlen(ok), &lim, NULL, &d), MR_OK);
    mr_hl7_release(&m);
    lim.max_fields = 11;
    expect_fail_n(ok, strlen(ok), &lim, MR_ETOOBIG,
                  "segment 1 (MSH): more than 11 fields (limit)");
    lim.max_fields = 3;
    expect_fail_n("MSH|^~\\&|A\rPID|1|2|3|4\r", 23, &lim, MR_ETOOBIG,
                  "segment 2 (PID): more than 3 fields (limit)");

    /* the defaults: 1 MiB, 10,000 segments, 256 fields */
    big = malloc(MR_HL7_MAX_BYTES + 2);
    assert_non_null(big);
    memset(big, 'x', MR_HL7_MAX_BYTES + 1);
    memcpy(big, ok, strlen(ok));
    expect_fail_n(big, MR_HL7_MAX_BYTES + 1, NULL, MR_ETOOBIG,
                  "message is 1048577 bytes; the limit is 1048576 bytes");
    {
        size_t n = strlen(ok);
        memcpy(big, ok, n);
        for (size_t i = 0; i < 9997; i++) {
            memcpy(big + n, "NTE|1\r", 6);
            n += 6;
        }
        assert_int_equal(mr_hl7_parse(&m, big, n, NULL, NULL, &d), MR_OK);
        assert_int_equal(m.nsegs, 10000);
        assert_int_equal(mr_hl7_occurrences(&m, "NTE"), 9997);
        mr_hl7_release(&m);
        memcpy(big + n, "NTE|1\r", 6);
        expect_fail_n(big, n + 6, NULL, MR_ETOOBIG,
                      "segment 10001: more than 10000 segments (limit)");
    }
    {
        size_t n = strlen(ok);
        memcpy(big, ok, n);
        memcpy(big + n, "OBX", 3);
        n += 3;
        for (size_t i = 0; i < 256; i++)
            big[n++] = '|';
        assert_int_equal(mr_hl7_parse(&m, big, n, NULL, NULL, &d), MR_OK);
        assert_int_equal(mr_hl7_find(&m, "OBX", 1)->nfields, 256);
        mr_hl7_release(&m);
        big[n++] = '|';
        expect_fail_n(big, n, NULL, MR_ETOOBIG,
                      "segment 4 (OBX): more than 256 fields (limit)");
    }
    free(big);
}

static void test_parse_out_of_memory(void **state)
{
    struct mr_hl7_msg m;
    struct mr_diag d;

    (void)state;
    mr_alloc_fail_after(0);
    assert_int_equal(mr_hl7_parse(&m, ADT, strlen(ADT), NULL, NULL, &d),
                     MR_ENOMEM);
    mr_alloc_fail_after(-1);
    assert_string_equal(d.msg, "out of memory");
}

/* ---- batches ----------------------------------------------------------------
 */

static void test_next_message(void **state)
{
    const char *batch = "\xEF\xBB\xBF"
                        "FHS|^~\\&|X\rBHS|^~\\&|X\r"
                        "MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5\rPID|1\r"
                        "MSH|^~\\&|A|B|C|D|1||ADT^A01|C2|P|2.5\r\nPID|2\r\n"
                        "BTS|2\rEVN|orphan\rFTS|1\r";
    struct mr_hl7_slice msg;
    size_t off = 0;

    (void)state;
    assert_int_equal(mr_hl7_next_message(batch, strlen(batch), &off, &msg), 1);
    check_slice(msg, "MSH|^~\\&|A|B|C|D|1||ADT^A01|C1|P|2.5\rPID|1\r");
    assert_int_equal(mr_hl7_next_message(batch, strlen(batch), &off, &msg), 1);
    check_slice(msg, "MSH|^~\\&|A|B|C|D|1||ADT^A01|C2|P|2.5\r\nPID|2\r\n");
    assert_int_equal(mr_hl7_next_message(batch, strlen(batch), &off, &msg), 1);
    check_slice(msg, "EVN|orphan\r"); /* not dropped: the parser refuses it */
    assert_int_equal(mr_hl7_next_message(batch, strlen(batch), &off, &msg), 0);
    assert_int_equal(mr_hl7_next_message(batch, strlen(batch), &off, &msg), 0);

    off = 0;
    assert_int_equal(mr_hl7_next_message(ADT, strlen(ADT), &off, &msg), 1);
    assert_int_equal(msg.len, strlen(ADT));
    assert_int_equal(mr_hl7_next_message(ADT, strlen(ADT), &off, &msg), 0);
    off = 0;
    assert_int_equal(mr_hl7_next_message("\r\n", 2, &off, &msg), 0);
}

/* ---- ACK --------------------------------------------------------------------
 */

static void build_ack(const char *msg, const struct mr_hl7_ack *a,
                      struct mr_buf *out)
{
    struct mr_hl7_msg m;
    struct mr_diag d;

    parse_ok(&m, msg);
    mr_buf_reset(out);
    if (mr_hl7_ack_build(&m, a, out, &d) != MR_OK)
        fail_msg("ack: %s", d.msg);
    mr_hl7_release(&m);
}

static void test_ack_aa(void **state)
{
    struct mr_buf b = MR_BUF_INIT(4096);
    struct mr_hl7_ack a = {MR_HL7_AA, "ACK-1", "20260301120001", NULL, NULL};
    struct mr_hl7_msg ack;

    (void)state;
    build_ack(ADT, &a, &b);
    assert_string_equal(b.ptr, "MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP|SENDFAC|"
                               "20260301120001||ACK^A01^ACK|ACK-1|P|2.5.1\r"
                               "MSA|AA|CTRL-1\r");
    /* and it parses back, field by field */
    parse_ok(&ack, b.ptr);
    assert_int_equal(ack.nsegs, 2);
    check_slice(ack.hdr.sending_app, "RECVAPP");
    check_slice(ack.hdr.sending_facility, "RECVFAC");
    check_slice(ack.hdr.receiving_app, "SENDAPP");
    check_slice(ack.hdr.receiving_facility, "SENDFAC");
    check_slice(ack.hdr.datetime, "20260301120001");
    check_slice(ack.hdr.msg_type, "ACK");
    check_slice(ack.hdr.trigger, "A01");
    check_slice(ack.hdr.structure, "ACK");
    check_slice(ack.hdr.control_id, "ACK-1");
    check_slice(ack.hdr.version, "2.5.1");
    check_get(&ack, "MSA", 1, 1, 0, 0, 0, "AA");
    check_get(&ack, "MSA", 1, 2, 0, 0, 0, "CTRL-1");
    assert_int_equal(mr_hl7_occurrences(&ack, "ERR"), 0);
    mr_hl7_release(&ack);

    /* HD components, MSH-11 with a mode, MSH-18 are echoed as sent */
    build_ack("MSH|^~\\&|LAB^1.2.3^ISO|F1|MEDREC|HOSP|2026||ORU^R01^ORU_R01|"
              "X\\F\\1|T^A|2.6^USA|||AL|NE||8859/1\r",
              &a, &b);
    assert_string_equal(b.ptr, "MSH|^~\\&|MEDREC|HOSP|LAB^1.2.3^ISO|F1|"
                               "20260301120001||ACK^R01^ACK|ACK-1|T^A|2.6^USA"
                               "||||||8859/1\r"
                               "MSA|AA|X\\F\\1\r");
    /* an AA with a reason carries it as a warning (ERR-4 W): a message
     * accepted but held, e.g. for an unknown patient */
    a.reason = "held | unmatched";
    mr_buf_reset(&b);
    build_ack("MSH|^~\\&|LAB^1.2.3^ISO|F1|MEDREC|HOSP|2026||ORU^R01^ORU_R01|"
              "X\\F\\1|T^A|2.6^USA|||AL|NE||8859/1\r",
              &a, &b);
    assert_string_equal(b.ptr, "MSH|^~\\&|MEDREC|HOSP|LAB^1.2.3^ISO|F1|"
                               "20260301120001||ACK^R01^ACK|ACK-1|T^A|2.6^USA"
                               "||||||8859/1\r"
                               "MSA|AA|X\\F\\1\r"
                               "ERR|||207^Application internal error^HL70357|"
                               "W||||held \\F\\ unmatched\r");
    a.reason = NULL;
    /* an empty MSH-11 becomes P */
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C1||2.5\r", &a, &b);
    assert_string_equal(b.ptr, "MSH|^~\\&|C|D|A|B|20260301120001||ACK^A01^ACK|"
                               "ACK-1|P|2.5\rMSA|AA|C1\r");
    mr_buf_release(&b);
}

static void test_ack_error_v25(void **state)
{
    struct mr_buf b = MR_BUF_INIT(4096), text = MR_BUF_INIT(4096);
    struct mr_hl7_loc w = {"PID", 1, 3, 0, 0, 0, MR_HL7_ERR_REQUIRED_MISSING};
    struct mr_hl7_ack a = {MR_HL7_AE, "ACK-2", "20260301120001", &w,
                           "PID-3: bad | id ^ with & and ~ and \\ and\n"
                           "newline"};
    struct mr_hl7_msg ack;
    struct mr_hl7_slice v;

    (void)state;
    build_ack(ADT, &a, &b);
    assert_string_equal(
        b.ptr, "MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP|SENDFAC|20260301120001||"
               "ACK^A01^ACK|ACK-2|P|2.5.1\r"
               "MSA|AE|CTRL-1\r"
               "ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3: "
               "bad \\F\\ id \\S\\ with \\T\\ and \\R\\ and \\E\\ and\\.br\\"
               "newline\r");
    parse_ok(&ack, b.ptr);
    check_get(&ack, "MSA", 1, 1, 0, 0, 0, "AE");
    check_get(&ack, "ERR", 1, 1, 0, 0, 0, "");
    check_get(&ack, "ERR", 1, 2, 1, 1, 0, "PID");
    check_get(&ack, "ERR", 1, 2, 1, 2, 0, "1");
    check_get(&ack, "ERR", 1, 2, 1, 3, 0, "3");
    check_get(&ack, "ERR", 1, 3, 1, 1, 0, "101");
    check_get(&ack, "ERR", 1, 3, 1, 3, 0, "HL70357");
    check_get(&ack, "ERR", 1, 4, 0, 0, 0, "E");
    assert_int_equal(mr_hl7_get(&ack, "ERR", 1, 8, 0, 0, 0, &v), MR_OK);
    assert_int_equal(
        mr_hl7_unescape(&ack.delims, ack.hdr.charset, v.ptr, v.len, &text),
        MR_OK);
    assert_string_equal(text.ptr, a.reason); /* the reason comes back whole */
    mr_hl7_release(&ack);

    /* a full location; AR; no reason: the code's text */
    w = (struct mr_hl7_loc){"OBX", 2, 5, 1, 2, 1, MR_HL7_ERR_DATA_TYPE};
    a.code = MR_HL7_AR;
    a.reason = NULL;
    build_ack(ADT, &a, &b);
    assert_non_null(strstr(b.ptr,
                           "\rMSA|AR|CTRL-1\rERR||OBX^2^5^1^2^1|102^Data "
                           "type error^HL70357|E||||Data type error\r"));
    /* no location: ERR-2 empty, code 207 */
    a.where = NULL;
    a.reason = "database is locked";
    build_ack(ADT, &a, &b);
    assert_non_null(strstr(b.ptr, "\rERR|||207^Application internal error^"
                                  "HL70357|E||||database is locked\r"));
    /* a segment without a field */
    w = (struct mr_hl7_loc){"ZPD", 1, 0, 0, 0, 0, MR_HL7_ERR_SEGMENT_SEQUENCE};
    a.where = &w;
    build_ack(ADT, &a, &b);
    assert_non_null(strstr(b.ptr, "\rERR||ZPD^1|100^Segment sequence error^"));
    mr_buf_release(&b);
    mr_buf_release(&text);
}

static void test_ack_error_old_versions(void **state)
{
    struct mr_buf b = MR_BUF_INIT(4096);
    struct mr_hl7_loc w = {"PID", 1, 5, 0, 0, 0, MR_HL7_ERR_DATA_TYPE};
    struct mr_hl7_ack a = {MR_HL7_AR, "ACK-3", "20260301120001", &w,
                           "bad name & more"};

    (void)state;
    /* v2.3: MSH-9 has no structure component; ERR-1 and MSA-3 */
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A08|X9|T|2.3\rPID|1\r", &a, &b);
    assert_string_equal(b.ptr, "MSH|^~\\&|C|D|A|B|20260301120001||ACK^A08|"
                               "ACK-3|T|2.3\r"
                               "MSA|AR|X9|bad name \\T\\ more\r"
                               "ERR|PID^1^5^102&bad name \\T\\ more&HL70357\r");
    /* v2.4: ACK^A08^ACK, still ERR-1 */
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A08|X9|T|2.4\rPID|1\r", &a, &b);
    assert_string_equal(b.ptr, "MSH|^~\\&|C|D|A|B|20260301120001||ACK^A08^ACK|"
                               "ACK-3|T|2.4\r"
                               "MSA|AR|X9|bad name \\T\\ more\r"
                               "ERR|PID^1^5^102&bad name \\T\\ more&HL70357\r");
    /* v2.3.1 also gets the structure component */
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A08|X9|T|2.3.1\r", &a, &b);
    assert_non_null(strstr(b.ptr, "||ACK^A08^ACK|"));
    /* no location */
    a.where = NULL;
    a.reason = NULL;
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A08|X9|T|2.4\r", &a, &b);
    assert_non_null(strstr(b.ptr, "\rMSA|AR|X9|Application internal error\r"
                                  "ERR|^^^207&Application internal error&"
                                  "HL70357\r"));
    mr_buf_release(&b);
}

static void test_ack_custom_delimiters_and_charsets(void **state)
{
    struct mr_buf b = MR_BUF_INIT(4096);
    struct mr_hl7_loc w = {"PID", 1, 5, 0, 0, 0, MR_HL7_ERR_DATA_TYPE};
    struct mr_hl7_ack a = {MR_HL7_AE, "ACK-4", "20260301120001", &w,
                           "a#b|c \xE2\x98\x83 M\xC3\xBCller"};

    (void)state;
    build_ack("MSH#^~\\&#A#B#C#D#2026##ADT^A01#C9#P#2.5\r", &a, &b);
    assert_string_equal(b.ptr, "MSH#^~\\&#C#D#A#B#20260301120001##ACK^A01^ACK#"
                               "ACK-4#P#2.5\r"
                               "MSA#AE#C9\r"
                               "ERR##PID^1^5#102^Data type error^HL70357#E####"
                               "a\\F\\b|c \xE2\x98\x83 M\xC3\xBCller\r");
    /* Latin-1: ü is one byte, the snowman cannot be said */
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C9|P|2.5||||||8859/1\r", &a, &b);
    assert_non_null(strstr(b.ptr, "|E||||a#b\\F\\c ? M\xFCller\r"));
    /* ASCII: neither */
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C9|P|2.5||||||ASCII\r", &a, &b);
    assert_non_null(strstr(b.ptr, "|E||||a#b\\F\\c ? M?ller\r"));
    /* invalid UTF-8 in a reason never reaches the wire */
    a.reason = "bad \xFF byte";
    build_ack("MSH|^~\\&|A|B|C|D|2026||ADT^A01|C9|P|2.5\r", &a, &b);
    assert_non_null(strstr(b.ptr, "|E||||bad ? byte\r"));
    /* a truncation character is escaped too */
    a.reason = "x#y";
    build_ack("MSH|^~\\&#|A|B|C|D|2026||ADT^A01|C9|P|2.7\r", &a, &b);
    assert_non_null(strstr(b.ptr, "|E||||x\\P\\y\r"));
    mr_buf_release(&b);
}

static void test_ack_bad_params(void **state)
{
    struct mr_hl7_msg m;
    struct mr_buf b = MR_BUF_INIT(4096);
    struct mr_hl7_ack a = {MR_HL7_AA, "ACK-1", "20260301120001", NULL, NULL};
    struct mr_diag d;
    char longid[201];

    (void)state;
    parse_ok(&m, ADT);
    assert_int_equal(mr_buf_adds(&b, "keep"), MR_OK);
    a.control_id = "A|B";
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    assert_string_equal(d.msg, "ACK MSH-10: control id must be printable "
                               "ASCII without delimiters");
    a.control_id = "";
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    assert_string_equal(d.msg,
                        "ACK MSH-10: control id must be 1 to 199 characters");
    a.control_id = NULL;
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    memset(longid, 'x', 200);
    longid[200] = '\0';
    a.control_id = longid;
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    a.control_id = "ACK\n1";
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    a.control_id = "ACK-1";
    a.timestamp = "2026-03-01";
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_OK);
    a.timestamp = "now";
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    assert_string_equal(d.msg, "ACK MSH-7: timestamp must be an HL7 date/time "
                               "such as 20260301120000+0100");
    a.timestamp = NULL;
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    a.timestamp = "20260301120001";
    a.code = (enum mr_hl7_ack_code)7;
    assert_int_equal(mr_hl7_ack_build(&m, &a, &b, &d), MR_EINVALID);
    /* the buffer is left as it was after each refusal... */
    assert_int_equal(strncmp(b.ptr, "keep", 4), 0);
    /* ...and after running out of room */
    {
        struct mr_buf small = MR_BUF_INIT(40);
        a.code = MR_HL7_AA;
        assert_int_equal(mr_buf_adds(&small, "x"), MR_OK);
        assert_int_equal(mr_hl7_ack_build(&m, &a, &small, &d), MR_ETOOBIG);
        assert_string_equal(small.ptr, "x");
        mr_buf_release(&small);
    }
    mr_hl7_release(&m);
    mr_buf_release(&b);
}

static void test_ack_unparsed(void **state)
{
    struct mr_buf b = MR_BUF_INIT(4096);
    struct mr_hl7_ack a = {MR_HL7_AR, "ACK-5", "20260301120001", NULL, NULL};
    struct mr_hl7_msg m;
    struct mr_hl7_loc w;
    struct mr_diag d, pd;
    const char *v22 = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|CTRL-9|T|2.2\r";

    (void)state;
    /* a parse failure gives the location and reason */
    assert_int_equal(mr_hl7_parse(&m, v22, strlen(v22), NULL, &w, &pd),
                     MR_EUNSUPPORTED);
    a.where = &w;
    a.reason = pd.msg;
    assert_int_equal(mr_hl7_ack_unparsed(v22, strlen(v22), &a, &b, &d), MR_OK);
    assert_string_equal(b.ptr,
                        "MSH|^~\\&|||||20260301120001||ACK|ACK-5|T|2.5\r"
                        "MSA|AR|CTRL-9\r"
                        "ERR||MSH^1^12|203^Unsupported version id^HL70357|E"
                        "||||MSH-12: version \"2.2\" is not supported (2.3 "
                        "to 2.8)\r");
    parse_ok(&m, b.ptr); /* our own ACK is a valid message */
    mr_hl7_release(&m);

    /* arbitrary bytes: MSA-2 empty */
    a.where = NULL;
    a.reason = "no MSH";
    mr_buf_reset(&b);
    assert_int_equal(mr_hl7_ack_unparsed("\x00\x01hello", 7, &a, &b, &d),
                     MR_OK);
    assert_string_equal(b.ptr, "MSH|^~\\&|||||20260301120001||ACK|ACK-5|P|2.5\r"
                               "MSA|AR|\r"
                               "ERR|||207^Application internal error^HL70357|"
                               "E||||no MSH\r");
    mr_buf_reset(&b);
    assert_int_equal(mr_hl7_ack_unparsed("", 0, &a, &b, &d), MR_OK);
    assert_non_null(strstr(b.ptr, "\rMSA|AR|\r"));

    /* the sender's own delimiters: its MSH-10 is re-escaped for ours; a
     * v2.4 version is kept, so ERR-1 and MSA-3 */
    mr_buf_reset(&b);
    {
        const char *s = "MSH#^~\\&#A#B#C#D#2026##ADT^A01#ab|c\\F\\d#D#2.4^X"
                        "\rPID#1\rbad\r";
        assert_int_equal(mr_hl7_ack_unparsed(s, strlen(s), &a, &b, &d), MR_OK);
        assert_string_equal(b.ptr,
                            "MSH|^~\\&|||||20260301120001||ACK|ACK-5|D|2.4\r"
                            "MSA|AR|ab\\F\\c#d|no MSH\r"
                            "ERR|^^^207&no MSH&HL70357\r");
    }
    /* broken encoding characters: MSH-10 still found by the separator */
    mr_buf_reset(&b);
    {
        const char *s = "\xEF\xBB\xBFMSH|^|A|B|C|D|2026||ADT|C^1|P|2.5\r";
        assert_int_equal(mr_hl7_ack_unparsed(s, strlen(s), &a, &b, &d), MR_OK);
        assert_non_null(strstr(b.ptr, "\rMSA|AR|C\\S\\1\r"));
    }
    /* a control id with non-ASCII bytes or too long is not echoed */
    mr_buf_reset(&b);
    {
        const char *s = "MSH|^~\\&|A|B|C|D|2026||ADT|C\xC3\xA9|P|2.5\r";
        assert_int_equal(mr_hl7_ack_unparsed(s, strlen(s), &a, &b, &d), MR_OK);
        assert_non_null(strstr(b.ptr, "\rMSA|AR|\r"));
    }
    /* AA cannot answer a message that did not parse */
    a.code = MR_HL7_AA;
    assert_int_equal(mr_hl7_ack_unparsed("x", 1, &a, &b, &d), MR_EINVALID);
    mr_buf_release(&b);
}

static void test_ack_out_of_memory(void **state)
{
    struct mr_hl7_msg m;
    struct mr_hl7_loc w = {"PID", 1, 3, 0, 0, 0, MR_HL7_ERR_DATA_TYPE};
    struct mr_hl7_ack a = {MR_HL7_AE, "ACK-1", "20260301120001", &w, "x|y"};
    struct mr_diag d;
    long n;

    (void)state;
    parse_ok(&m, ADT);
    for (n = 0; n < 100; n++) {
        struct mr_buf b = MR_BUF_INIT(4096);
        enum mr_err err;
        mr_alloc_fail_after(n);
        err = mr_hl7_ack_build(&m, &a, &b, &d);
        mr_alloc_fail_after(-1);
        if (err == MR_OK) {
            assert_non_null(strstr(b.ptr, "x\\F\\y"));
            mr_buf_release(&b);
            break;
        }
        assert_int_equal(err, MR_ENOMEM);
        assert_int_equal(b.len, 0);
        mr_buf_release(&b);
    }
    assert_true(n > 0 && n < 100);
    for (n = 0; n < 100; n++) {
        struct mr_buf b = MR_BUF_INIT(4096);
        enum mr_err err;
        mr_alloc_fail_after(n);
        err = mr_hl7_ack_unparsed(ADT, strlen(ADT), &a, &b, &d);
        mr_alloc_fail_after(-1);
        mr_buf_release(&b);
        if (err == MR_OK)
            break;
        assert_int_equal(err, MR_ENOMEM);
    }
    assert_true(n > 0 && n < 100);
    mr_hl7_release(&m);
}

/* ---- MLLP -------------------------------------------------------------------
 */

/* Run the decoder over in[0..n) cut into chunks of the given sizes
 * (cycled), and log the events: F<payload>; for frames, G<n>; for garbage
 * (consecutive garbage merged, so any chunking logs the same), T<n>;
 * and B;. */
static void run_mllp(const char *in, size_t n, const size_t *sizes,
                     size_t nsizes, size_t max_frame, struct mr_buf *log)
{
    struct mr_mllp_decoder dec;
    size_t off = 0, k = 0, garbage = 0;

    mr_buf_reset(log);
    mr_mllp_decoder_init(&dec, max_frame);
    while (off < n) {
        size_t chunk = sizes[k++ % nsizes];
        const char *p = in + off;
        size_t left;

        if (chunk == 0 || chunk > n - off)
            chunk = n - off;
        left = chunk;
        off += chunk;
        while (left > 0) {
            struct mr_mllp_event ev;
            struct mr_diag d;
            size_t used = 99999;
            enum mr_err err;

            mr_diag_clear(&d);
            err = mr_mllp_decode(&dec, p, left, &used, &ev, &d);
            assert_true(used <= left);
            p += used;
            left -= used;
            if (ev.kind == MR_MLLP_GARBAGE) {
                assert_int_equal(err, MR_OK);
                assert_true(ev.len > 0);
                assert_true(ev.ptr >= in && ev.ptr + ev.len <= in + n);
                garbage += ev.len;
                continue;
            }
            if (ev.kind != MR_MLLP_NONE && garbage) {
                assert_int_equal(mr_buf_addf(log, "G%zu;", garbage), MR_OK);
                garbage = 0;
            }
            switch (ev.kind) {
            case MR_MLLP_FRAME:
                assert_int_equal(err, MR_OK);
                assert_int_equal(mr_buf_adds(log, "F"), MR_OK);
                assert_int_equal(mr_buf_add(log, ev.ptr, ev.len), MR_OK);
                assert_int_equal(mr_buf_adds(log, ";"), MR_OK);
                break;
            case MR_MLLP_TOOBIG:
                assert_int_equal(err, MR_ETOOBIG);
                assert_true(d.msg[0] != '\0');
                assert_int_equal(mr_buf_adds(log, "T;"), MR_OK);
                break;
            case MR_MLLP_BROKEN:
                assert_int_equal(err, MR_EINVALID);
                assert_true(d.msg[0] != '\0');
                assert_int_equal(mr_buf_adds(log, "B;"), MR_OK);
                break;
            default:
                assert_int_equal(err, MR_OK);
                assert_int_equal(left, 0); /* all consumed */
                break;
            }
        }
    }
    if (garbage)
        assert_int_equal(mr_buf_addf(log, "G%zu;", garbage), MR_OK);
    if (mr_mllp_in_frame(&dec))
        assert_int_equal(mr_buf_addf(log, "P%zu;", mr_mllp_pending(&dec)),
                         MR_OK);
    mr_mllp_decoder_release(&dec);
}

/* The same log for one chunk, byte by byte, every two-way split and a few
 * irregular patterns. */
static void check_mllp(const char *in, size_t n, size_t max_frame,
                       const char *want)
{
    static const size_t one[] = {1}, whole[] = {0};
    static const size_t odd[] = {3, 1, 7, 2, 5}, big[] = {64, 1, 13};
    struct mr_buf log = MR_BUF_INIT(1 << 20);

    run_mllp(in, n, whole, 1, max_frame, &log);
    if (strcmp(log.ptr, want) != 0)
        fail_msg("whole: %s, want %s", log.ptr, want);
    run_mllp(in, n, one, 1, max_frame, &log);
    if (strcmp(log.ptr, want) != 0)
        fail_msg("bytewise: %s, want %s", log.ptr, want);
    run_mllp(in, n, odd, 5, max_frame, &log);
    assert_string_equal(log.ptr, want);
    run_mllp(in, n, big, 3, max_frame, &log);
    assert_string_equal(log.ptr, want);
    for (size_t cut = 1; cut < n; cut++) {
        size_t two[] = {cut, 0};
        run_mllp(in, n, two, 2, max_frame, &log);
        if (strcmp(log.ptr, want) != 0)
            fail_msg("split at %zu: %s, want %s", cut, log.ptr, want);
    }
    mr_buf_release(&log);
}

#define CHECK_MLLP(lit, max, want) check_mllp(lit, sizeof(lit) - 1, max, want)

static void test_mllp_frames(void **state)
{
    (void)state;
    CHECK_MLLP("\x0bMSH|a\rPID|1\r\x1c\x0d", 0, "FMSH|a\rPID|1\r;");
    /* several frames in one read, one empty */
    CHECK_MLLP("\x0b"
               "A\x1c\x0d\x0b"
               "BB\x1c\x0d\x0b\x1c\x0d\x0b"
               "C\x1c\x0d",
               0, "FA;FBB;F;FC;");
    /* a partial frame stays pending */
    CHECK_MLLP("\x0b"
               "A\x1c\x0d\x0b"
               "BCD",
               0, "FA;P3;");
    CHECK_MLLP("\x0b"
               "ABC\x1c",
               0, "P3;");
}

static void test_mllp_garbage(void **state)
{
    (void)state;
    /* bytes before the start block: reported, not merged */
    CHECK_MLLP("junk\x0b"
               "A\x1c\x0d",
               0, "G4;FA;");
    CHECK_MLLP("\x0b"
               "A\x1c\x0d\r\n\x0b"
               "B\x1c\x0d"
               "tail",
               0, "FA;G2;FB;G4;");
    CHECK_MLLP("only garbage", 0, "G12;");
    /* an end block without its CR: the frame is dropped and said so */
    CHECK_MLLP("\x0b"
               "AB\x1cX\x0b"
               "C\x1c\x0d",
               0, "B;G1;FC;");
    CHECK_MLLP("\x0b"
               "AB\x1c\x0b"
               "C\x1c\x0d",
               0, "B;FC;");
    /* a start block inside a frame: the old one is dropped, the new kept */
    CHECK_MLLP("\x0b"
               "AB\x0b"
               "CD\x1c\x0d",
               0, "B;FCD;");
}

static void test_mllp_too_big(void **state)
{
    (void)state;
    /* exactly the limit is fine */
    CHECK_MLLP("\x0b"
               "ABCD\x1c\x0d",
               4, "FABCD;");
    /* one more is refused, and the next frame is still read */
    CHECK_MLLP("\x0b"
               "ABCDE\x1c\x0d\x0b"
               "OK\x1c\x0d",
               4, "T;FOK;");
    /* resynchronised at the next start block even without an end block */
    CHECK_MLLP("\x0b"
               "ABCDEFGH\x0b"
               "OK\x1c\x0d",
               4, "T;FOK;");
    /* an end block inside the dropped bytes does not end the skip early */
    CHECK_MLLP("\x0b"
               "ABCDEFG\x1cH\x1c\x0d"
               "xy\x0b"
               "OK\x1c\x0d",
               4, "T;G2;FOK;");
    CHECK_MLLP("\x0b"
               "ABCDEFGHIJ",
               4, "T;");
}

static void test_mllp_reset_and_pending(void **state)
{
    struct mr_mllp_decoder dec;
    struct mr_mllp_event ev;
    struct mr_diag d;
    size_t used;

    (void)state;
    mr_mllp_decoder_init(&dec, 0);
    assert_int_equal(dec.max_frame, MR_MLLP_MAX_FRAME);
    assert_int_equal(mr_mllp_decode(&dec,
                                    "\x0b"
                                    "ABC",
                                    4, &used, &ev, &d),
                     MR_OK);
    assert_int_equal(ev.kind, MR_MLLP_NONE);
    assert_int_equal(used, 4);
    assert_true(mr_mllp_in_frame(&dec));
    assert_int_equal(mr_mllp_pending(&dec), 3);
    /* the caller's time-out */
    mr_mllp_decoder_reset(&dec);
    assert_false(mr_mllp_in_frame(&dec));
    assert_int_equal(mr_mllp_pending(&dec), 0);
    /* the rest of the old frame is garbage now */
    assert_int_equal(mr_mllp_decode(&dec, "D\x1c\x0d", 3, &used, &ev, &d),
                     MR_OK);
    assert_int_equal(ev.kind, MR_MLLP_GARBAGE);
    assert_int_equal(ev.len, 3);
    assert_int_equal(mr_mllp_decode(&dec, "", 0, &used, &ev, &d), MR_OK);
    assert_int_equal(ev.kind, MR_MLLP_NONE);
    assert_int_equal(used, 0);
    mr_mllp_decoder_release(&dec);
}

static void test_mllp_encode(void **state)
{
    struct mr_buf b = MR_BUF_INIT(64), log = MR_BUF_INIT(4096);
    static const size_t one[] = {1};

    (void)state;
    assert_int_equal(mr_mllp_encode(&b, "MSH|x\r", 6), MR_OK);
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.ptr, "\x0bMSH|x\r\x1c\x0d", 9);
    assert_int_equal(mr_mllp_encode(&b, "", 0), MR_OK);
    assert_memory_equal(b.ptr + 9, "\x0b\x1c\x0d", 3);
    run_mllp(b.ptr, b.len, one, 1, 0, &log);
    assert_string_equal(log.ptr, "FMSH|x\r;F;");
    /* framing bytes in the payload are refused; b unchanged */
    assert_int_equal(mr_mllp_encode(&b, "a\x1c\x0d", 3), MR_EINVALID);
    assert_int_equal(mr_mllp_encode(&b, "a\x0b", 2), MR_EINVALID);
    assert_int_equal(b.len, 12);
    {
        char big[80];
        memset(big, 'x', sizeof(big));
        assert_int_equal(mr_mllp_encode(&b, big, sizeof(big)), MR_ETOOBIG);
        assert_int_equal(b.len, 12);
    }
    mr_buf_release(&b);
    mr_buf_release(&log);
}

/* Encoded messages decoded back whole, through pseudo-random chunking. */
static void test_mllp_roundtrip(void **state)
{
    struct mr_buf wire = MR_BUF_INIT(1 << 20), log = MR_BUF_INIT(1 << 20);
    struct mr_buf want = MR_BUF_INIT(1 << 20);
    uint32_t x = 12345;

    (void)state;
    for (int i = 0; i < 20; i++) {
        char msg[300];
        int n = snprintf(msg, sizeof(msg),
                         "MSH|^~\\&|A|B|C|D|2026||ADT^A01|C%d|P|2.5\rPID|%d\r",
                         i, i * 7);
        assert_int_equal(mr_mllp_encode(&wire, msg, (size_t)n), MR_OK);
        assert_int_equal(mr_buf_addf(&want, "F%s;", msg), MR_OK);
    }
    for (int round = 0; round < 50; round++) {
        size_t sizes[16];
        for (int k = 0; k < 16; k++) {
            x = x * 1103515245u + 12345u;
            sizes[k] = 1 + (x >> 16) % 97;
        }
        run_mllp(wire.ptr, wire.len, sizes, 16, 0, &log);
        assert_string_equal(log.ptr, want.ptr);
    }
    mr_buf_release(&wire);
    mr_buf_release(&log);
    mr_buf_release(&want);
}

/* ---- the shared samples
 * ------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

/* Every accessor over every segment, field, repetition, component and
 * subcomponent stays inside the message. */
static void walk_all(const struct mr_hl7_msg *m)
{
    struct mr_buf b = MR_BUF_INIT(1 << 20);

    for (size_t i = 0; i < m->nsegs; i++) {
        const struct mr_hl7_seg *s = &m->segs[i];
        for (size_t f = 0; f <= s->nfields + 1; f++) {
            size_t nr = mr_hl7_count(m, s, f, 0, 0);
            for (size_t r = 1; r <= nr + 1; r++) {
                size_t nc = mr_hl7_count(m, s, f, r, 0);
                for (size_t c = 1; c <= nc + 1; c++) {
                    size_t ns = mr_hl7_count(m, s, f, r, c);
                    for (size_t k = 1; k <= ns + 1; k++) {
                        struct mr_hl7_slice v;
                        assert_int_equal(mr_hl7_seg_get(m, s, f, r, c, k, &v),
                                         MR_OK);
                        assert_true(v.ptr >= m->data &&
                                    v.ptr + v.len <= m->data + m->len);
                        mr_buf_reset(&b);
                        assert_int_equal(mr_hl7_unescape(&m->delims,
                                                         m->hdr.charset, v.ptr,
                                                         v.len, &b),
                                         MR_OK);
                    }
                }
            }
        }
    }
    mr_buf_release(&b);
}

/* Messages in good samples that medrec refuses on purpose, and why: two
 * of nHapi's OML^O21 messages have no MSH-10, without which an ACK cannot
 * name the message and a resend cannot be recognised. */
static const struct {
    const char *file, *msg;
} known_refusals[] = {
    {"nhapi_OML_O21_messages.hl7", "MSH-10: control id is required"},
};

static int known_refusal(const char *file, const char *msg)
{
    for (size_t i = 0; i < sizeof(known_refusals) / sizeof(known_refusals[0]);
         i++)
        if (!strcmp(file, known_refusals[i].file) &&
            !strcmp(msg, known_refusals[i].msg))
            return 1;
    return 0;
}

static void test_shared_samples(void **state)
{
    const char *shared = getenv("MEDREC_SHARED_DATA");
    char dir[1024], path[2048];
    DIR *dp;
    struct dirent *ent;
    size_t files = 0, whole = 0, split_ok = 0, msgs = 0, msgs_ok = 0;

    (void)state;
    if (shared == NULL || shared[0] == '\0') {
        printf("hl7 samples: MEDREC_SHARED_DATA not set, skipped\n");
        skip();
    }
    snprintf(dir, sizeof(dir), "%s/hl7v2", shared);
    dp = opendir(dir);
    if (dp == NULL) {
        printf("hl7 samples: %s absent, skipped\n", dir);
        skip();
    }
    while ((ent = readdir(dp)) != NULL) {
        size_t n = strlen(ent->d_name), len = 0, off = 0;
        int bad = !strncmp(ent->d_name, "nhapi_bad_", 10) ||
                  !strncmp(ent->d_name, "pyhl7_sample_bad_", 17);
        int all_ok = 1;
        struct mr_hl7_msg m;
        struct mr_hl7_slice one;
        struct mr_diag d, d2;
        struct mr_hl7_loc w;
        char *buf;

        if (n < 5 || strcmp(ent->d_name + n - 4, ".hl7") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, ent->d_name);
        buf = read_file(path, &len);
        assert_non_null(buf);
        files++;

        /* the file as one message */
        mr_diag_clear(&d);
        if (mr_hl7_parse(&m, buf, len, NULL, &w, &d) == MR_OK) {
            whole++;
            walk_all(&m);
            mr_hl7_release(&m);
        } else {
            assert_true(d.msg[0] != '\0');
            assert_int_not_equal(d.code, MR_OK);
            if (!bad)
                printf("hl7 samples: %s whole: %s\n", ent->d_name, d.msg);
        }

        /* and split into its messages (batches, several messages) */
        while (mr_hl7_next_message(buf, len, &off, &one)) {
            struct mr_buf ack = MR_BUF_INIT(1 << 16);
            struct mr_hl7_ack a = {MR_HL7_AA, "A1", "20260301", NULL, NULL};

            msgs++;
            mr_diag_clear(&d);
            if (mr_hl7_parse(&m, one.ptr, one.len, NULL, &w, &d) == MR_OK) {
                struct mr_hl7_slice v;
                msgs_ok++;
                assert_int_equal(mr_hl7_get(&m, "MSH", 1, 9, 1, 1, 0, &v),
                                 MR_OK);
                assert_true(v.len > 0);
                assert_int_equal(mr_hl7_get(&m, "MSH", 1, 10, 0, 0, 0, &v),
                                 MR_OK);
                assert_true(v.len > 0);
                assert_int_equal(mr_hl7_ack_build(&m, &a, &ack, &d), MR_OK);
                mr_hl7_release(&m);
            } else {
                all_ok = 0;
                assert_true(d.msg[0] != '\0');
                a.code = MR_HL7_AR;
                a.where = &w;
                a.reason = d.msg;
                assert_int_equal(
                    mr_hl7_ack_unparsed(one.ptr, one.len, &a, &ack, &d2),
                    MR_OK);
                printf("hl7 samples: %s: %s\n", ent->d_name, a.reason);
                if (!bad && !known_refusal(ent->d_name, a.reason))
                    fail_msg("%s: a good sample does not parse", ent->d_name);
            }
            mr_buf_release(&ack);
        }
        if (all_ok && off > 0)
            split_ok++;
        free(buf);
    }
    closedir(dp);
    printf("hl7 samples: %zu files, %zu parse whole, %zu parse after "
           "splitting batches; %zu of %zu messages parse\n",
           files, whole, split_ok, msgs_ok, msgs);
    assert_true(files > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_header),
        cmocka_unit_test(test_msh_numbering),
        cmocka_unit_test(test_repetitions_components),
        cmocka_unit_test(test_null_and_empty),
        cmocka_unit_test(test_z_segments),
        cmocka_unit_test(test_custom_delimiters),
        cmocka_unit_test(test_segment_separators),
        cmocka_unit_test(test_charsets),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_unescape_limit),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_parse_out_of_memory),
        cmocka_unit_test(test_next_message),
        cmocka_unit_test(test_ack_aa),
        cmocka_unit_test(test_ack_error_v25),
        cmocka_unit_test(test_ack_error_old_versions),
        cmocka_unit_test(test_ack_custom_delimiters_and_charsets),
        cmocka_unit_test(test_ack_bad_params),
        cmocka_unit_test(test_ack_unparsed),
        cmocka_unit_test(test_ack_out_of_memory),
        cmocka_unit_test(test_mllp_frames),
        cmocka_unit_test(test_mllp_garbage),
        cmocka_unit_test(test_mllp_too_big),
        cmocka_unit_test(test_mllp_reset_and_pending),
        cmocka_unit_test(test_mllp_encode),
        cmocka_unit_test(test_mllp_roundtrip),
        cmocka_unit_test(test_shared_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
