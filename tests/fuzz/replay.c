/*
 * Replay driver for fuzz targets without libFuzzer: feeds every regular
 * file of the directory argv[1] to LLVMFuzzerTestOneInput once, so CTest
 * runs each target over its committed corpus.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (16u * 1024u * 1024u)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (f == NULL)
        return -1;
    for (;;) {
        size_t n;

        if (len == cap) {
            uint8_t *nb;

            if (cap >= REPLAY_MAX_INPUT)
                goto done;
            cap = cap ? cap * 2 : 4096;
            nb = realloc(buf, cap);
            if (nb == NULL)
                goto done;
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f))
        goto done;
    LLVMFuzzerTestOneInput(buf ? buf : (const uint8_t *)"", len);
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    DIR *dir;
    struct dirent *ent;
    size_t count = 0;
    int failed = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    dir = opendir(argv[1]);
    if (dir == NULL) {
        perror(argv[1]);
        return 1;
    }
    while ((ent = readdir(dir)) != NULL) {
        char path[4096];
        struct stat st;
        int n;

        if (ent->d_name[0] == '.')
            continue;
        n = snprintf(path, sizeof(path), "%s/%s", argv[1], ent->d_name);
        if (n < 0 || (size_t)n >= sizeof(path))
            continue;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (replay_file(path) != 0) {
            fprintf(stderr, "%s: cannot read\n", path);
            failed = 1;
            continue;
        }
        count++;
    }
    closedir(dir);
    printf("%zu inputs replayed\n", count);
    return failed;
}
