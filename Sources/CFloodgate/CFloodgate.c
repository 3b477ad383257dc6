/*
 * The CFloodgate module has no logic of its own (see include/CFloodgate.h); this file holds shims for calls
 * Swift's Glibc module hides behind _GNU_SOURCE.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include "CFloodgate.h"

int cfloodgate_pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

_Static_assert(sizeof(cpu_set_t) == CFLOODGATE_AFFINITY_BYTES, "cpu_set_t size");

int cfloodgate_get_affinity(unsigned char mask[CFLOODGATE_AFFINITY_BYTES])
{
    return sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)mask) ? -errno : 0;
}

int cfloodgate_set_affinity(const unsigned char mask[CFLOODGATE_AFFINITY_BYTES])
{
    return sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)mask) ? -errno : 0;
}

int cfloodgate_current_cpu(void)
{
    return sched_getcpu();
}

int cfloodgate_pipe_cloexec(int fds[2])
{
    return pipe2(fds, O_CLOEXEC) ? -errno : 0;
}
