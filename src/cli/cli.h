/*
 * The medrec command line: one program, one dispatch table (main.c), one
 * file per command (cmd_<name>.c). Only this adapter prints; results go
 * to stdout, messages to stderr. Exit status: 0 ok, 1 failure, 2 usage.
 */
#ifndef MR_CLI_CLI_H
#define MR_CLI_CLI_H

#include "medrec/medrec.h"
#include "records/records.h"

#define EXIT_USAGE 2

/* Options shared by every command. */
struct cli {
    const char *db;   /* --db, $MEDREC_DB, or ./medrec.db */
    const char *user; /* --as, or the login name */
    int json;         /* --json */
    struct mr_actor actor;
    char role[40], patient[80]; /* of a registered user */
};

/* Set defaults from the environment. */
void cli_init(struct cli *c);

/* Handle a common option (returns 1 if it was one). Use with the
 * CLI_COMMON_OPTIONS entries in a getopt_long table. */
int cli_common_option(struct cli *c, int opt, const char *arg);

enum { OPT_DB = 1000, OPT_AS, OPT_JSON, OPT_HELP };
#define CLI_COMMON_OPTIONS                                                     \
    {"db", required_argument, NULL, OPT_DB},                                   \
        {"as", required_argument, NULL, OPT_AS},                               \
        {"json", no_argument, NULL, OPT_JSON},                                 \
    {                                                                          \
        "help", no_argument, NULL, OPT_HELP                                    \
    }

/* Open the records service (creating the database if create). Prints the
 * error and returns NULL on failure. */
struct mr_records *cli_open(struct cli *c, int create);

/* Print "medrec: <message>" for d and return the exit status for it. */
int cli_fail(const struct mr_diag *d);
/* Print a usage error for cmd and return EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) MR_PRINTF(2, 3);

/* Read a whole file (or stdin for "-") up to max bytes. Returns a heap
 * buffer (mr_free) or NULL with d set. */
char *cli_read_file(const char *path, size_t max, size_t *len,
                    struct mr_diag *d);

/* Split "Type/id" into type and id buffers; 0 on success. */
int cli_split_ref(const char *ref, char *type, size_t tcap, char *id,
                  size_t icap);

int cmd_init(int argc, char **argv);
int cmd_patient(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_disclose(int argc, char **argv);
int cmd_disclosures(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_hl7(int argc, char **argv);

#endif
