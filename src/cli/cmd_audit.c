/*
 * medrec audit, disclose, disclosures: the audit trail and the accounting
 * of disclosures.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_audit(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "medrec audit: not implemented yet\n");
    return 1;
}

int cmd_disclose(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "medrec disclose: not implemented yet\n");
    return 1;
}

int cmd_disclosures(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "medrec disclosures: not implemented yet\n");
    return 1;
}
