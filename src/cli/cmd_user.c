/*
 * medrec user, token, policy: who may sign in, with which role, and what
 * each role may do.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_user(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "medrec user: not implemented yet\n");
    return 1;
}

int cmd_token(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "medrec token: not implemented yet\n");
    return 1;
}

int cmd_policy(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "medrec policy: not implemented yet\n");
    return 1;
}
