/* Worst case for a syscall tracer: nothing but system calls.
 * usage: getppid_loop CALLS RESULT_FILE — writes the mean ns per call to RESULT_FILE. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s CALLS RESULT_FILE\n", argv[0]);
        return 2;
    }
    long calls = atol(argv[1]);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < calls; i++)
        syscall(SYS_getppid);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ns = (end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec);
    FILE *out = fopen(argv[2], "w");
    if (!out || fprintf(out, "%.2f\n", ns / calls) < 0 || fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    return 0;
}
