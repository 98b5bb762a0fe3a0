/* Small file I/O, as fio would do it: 4 KiB random reads of a cached file, or 4 KiB O_DIRECT
 * random writes.
 * usage: file_io_loop randread|directwrite PATH OPS RESULT_FILE
 * Creates PATH (64 MiB) when it is smaller, then writes the mean ns per operation to
 * RESULT_FILE. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_BYTES (64L << 20)
#define BLOCK 4096L

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_offset(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng % (FILE_BYTES / BLOCK)) * BLOCK;
}

static int fail(const char *what) {
    perror(what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s randread|directwrite PATH OPS RESULT_FILE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    long ops = atol(argv[3]);
    int direct = strcmp(mode, "directwrite") == 0;
    if (!direct && strcmp(mode, "randread") != 0)
        return fprintf(stderr, "unknown mode %s\n", mode), 2;

    void *buffer;
    if (posix_memalign(&buffer, BLOCK, BLOCK) != 0)
        return fail("posix_memalign");
    memset(buffer, 'b', BLOCK);
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size < FILE_BYTES) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            return fail(path);
        for (long done = 0; done < FILE_BYTES; done += BLOCK)
            if (write(fd, buffer, BLOCK) != BLOCK)
                return fail("write");
        if (fsync(fd) != 0 || close(fd) != 0)
            return fail("fsync");
    }
    int fd = open(path, direct ? O_WRONLY | O_DIRECT : O_RDONLY);
    if (fd < 0)
        return fail(path);
    if (!direct) /* warm the page cache: the reads measure the syscall path, not the disk */
        for (long done = 0; done < FILE_BYTES; done += BLOCK)
            if (pread(fd, buffer, BLOCK, done) != BLOCK)
                return fail("pread");

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < ops; i++) {
        ssize_t n = direct ? pwrite(fd, buffer, BLOCK, next_offset())
                           : pread(fd, buffer, BLOCK, next_offset());
        if (n != BLOCK)
            return fail(direct ? "pwrite" : "pread");
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    close(fd);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    FILE *out = fopen(argv[4], "w");
    if (!out || fprintf(out, "%.2f\n", ns / ops) < 0 || fclose(out) != 0)
        return fail(argv[4]);
    return 0;
}
