/* Fuzz target: arbitrary bytes as an HL7 v2 message applied to a records
 * database (src/records/hl7_map.c through the records service), each in a
 * transaction that is rolled back, on a database that knows one patient,
 * visit and order (so results and updates get past matching). Must never
 * crash, leak or read out of bounds; an outcome is always explained: a
 * message's failure names a reason, a success lists what it wrote. */
#include "hl7/parse.h"
#include "records/hl7_map.h"
#include "records/records_impl.h"
#include "store/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct mr_records *db;
static const struct mr_actor local = {"fuzz", NULL, "fuzz", NULL, 1};

static const char seed_a04[] =
    "MSH|^~\\&|REG|HOSP|MEDREC|HOSP|20260101120000+0100||ADT^A04|S1|P|2.5.1\r"
    "PID|1||12345^^^HOSP^MR||Doe^Jane||19800101|F\r"
    "PV1|1|O|CLINIC^1^1||||||||||||||||V100^^^HOSP\r";
static const char seed_orm[] =
    "MSH|^~\\&|CPOE|HOSP|MEDREC|HOSP|20260101120000+0100||ORM^O01|S2|P|2.5.1\r"
    "PID|1||12345^^^HOSP^MR||Doe^Jane\r"
    "ORC|NW|P100^CPOE\r"
    "OBR|1|P100^CPOE||2345-7^Glucose^LN\r";

static void apply(const char *p, size_t n, int keep)
{
    struct mr_hl7_msg m;
    struct mr_hl7_applied out;
    struct mr_diag d;
    enum mr_err err;

    mr_diag_clear(&d);
    if (mr_hl7_parse(&m, p, n, NULL, NULL, &d))
        return;
    if (mr_store_begin(db->st, 1, &d))
        abort();
    db->in_bundle = 1;
    mr_hl7_applied_init(&out);
    err = mr_hl7_apply(db, &local, &m, "HOSP", &out, &d);
    db->in_bundle = 0;
    mr_audit_batch_release(&db->denials);
    if (!err && (out.resources.len < 2 || out.resources.ptr[0] != '['))
        __builtin_trap();
    if (err && err != MR_ENOMEM && !d.msg[0])
        __builtin_trap();
    if (keep && !err) {
        if (mr_store_commit(db->st, &d))
            abort();
    } else {
        mr_store_rollback(db->st);
    }
    mr_hl7_applied_release(&out);
    mr_hl7_release(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db) {
        char dir[] = "/tmp/medrec-fuzz-XXXXXX", path[64];
        struct mr_diag d;
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof(path), "%s/f.db", dir);
        mr_diag_clear(&d);
        if (mr_records_open(path, MR_STORE_CREATE, &db, &d))
            abort();
        apply(seed_a04, sizeof(seed_a04) - 1, 1);
        apply(seed_orm, sizeof(seed_orm) - 1, 1);
    }
    apply((const char *)data, size, 0);
    return 0;
}
