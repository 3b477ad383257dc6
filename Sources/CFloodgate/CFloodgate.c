/*
 * The CFloodgate module has no logic of its own (see include/CFloodgate.h); this file holds shims for calls
 * Swift's Glibc module hides behind _GNU_SOURCE.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
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

static void cfloodgate_ignore_signal(int sig)
{
    (void)sig;
}

int cfloodgate_install_interrupt_signal(void)
{
    struct sigaction action = {.sa_handler = cfloodgate_ignore_signal};

    sigemptyset(&action.sa_mask);
    return sigaction(SIGUSR2, &action, NULL) ? -errno : 0;
}

int cfloodgate_block_interrupt_signal(int block)
{
    sigset_t set, old;
    int err;

    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    err = pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, &old);
    return err ? -err : sigismember(&old, SIGUSR2);
}

int cfloodgate_interrupt_thread(unsigned long thread)
{
    return -pthread_kill((pthread_t)thread, SIGUSR2);
}

int cfloodgate_send_frames(int fd, const void *base, unsigned size, unsigned stride, unsigned count)
{
    struct mmsghdr messages[CFLOODGATE_SEND_BATCH];
    struct iovec vectors[CFLOODGATE_SEND_BATCH];
    int sent;

    if (count > CFLOODGATE_SEND_BATCH)
        count = CFLOODGATE_SEND_BATCH;
    for (unsigned i = 0; i < count; i++) {
        vectors[i] = (struct iovec){.iov_base = (char *)base + (size_t)i * stride, .iov_len = size};
        messages[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &vectors[i], .msg_iovlen = 1}};
    }
    sent = sendmmsg(fd, messages, count, 0);
    return sent < 0 ? -errno : sent;
}
