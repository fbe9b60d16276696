/*
 * The ceiling: a bare libmicrohttpd server (same flags as medrec serve:
 * epoll thread pool) answering every request with a fixed JSON body, on
 * the handler's second call so the connection stays alive.
 *
 * usage: bench_bare_mhd PORT [THREADS]   (runs until killed)
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] =
    "{\"resourceType\":\"Patient\",\"id\":\"bench\",\"meta\":{\"versionId\":"
    "\"1\"},\"name\":[{\"family\":\"Bench\",\"given\":[\"Fixed\"]}],"
    "\"gender\":\"female\",\"birthDate\":\"1984-03-09\"}";

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **state)
{
    static int marker;
    struct MHD_Response *r;
    enum MHD_Result ret;

    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*state != &marker) {
        *state = &marker;
        return MHD_YES;
    }
    *upload_size = 0;
    r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
                                        MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/fhir+json");
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 18090;
    unsigned threads = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 4;
    struct MHD_Daemon *d;

    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, (uint16_t)port, NULL,
                         NULL, handler, NULL, MHD_OPTION_THREAD_POOL_SIZE,
                         threads, MHD_OPTION_CONNECTION_LIMIT, 1000u,
                         MHD_OPTION_END);
    if (!d)
        return 1;
    printf("bare libmicrohttpd on 127.0.0.1:%u\n", port);
    fflush(stdout);
    pause();
    MHD_stop_daemon(d);
    return 0;
}
