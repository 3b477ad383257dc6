/*
 * CFloodgate: libbpf and the shared BPF layouts, for Swift. No logic here:
 * only shims for what Swift cannot call directly (LIBBPF_OPTS, va_list, and
 * what Swift's Glibc module leaves out without _GNU_SOURCE: setns, sendmmsg).
 */
#ifndef CFLOODGATE_H
#define CFLOODGATE_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../../BPF/floodgate.h"

/* setns(2) and CLONE_NEWNET are declared only under _GNU_SOURCE, which Swift's Glibc module leaves out. */
extern int setns(int fd, int nstype);
#define CFLOODGATE_CLONE_NEWNET 0x40000000

/* Pin the calling thread to one CPU (sched_setaffinity); 0 or -errno. */
int cfloodgate_pin_to_cpu(int cpu);
/* The calling thread's CPU affinity (a cpu_set_t, opaque), to put back after pinning; 0 or -errno. */
#define CFLOODGATE_AFFINITY_BYTES 128
int cfloodgate_get_affinity(unsigned char mask[CFLOODGATE_AFFINITY_BYTES]);
int cfloodgate_set_affinity(const unsigned char mask[CFLOODGATE_AFFINITY_BYTES]);
/* The CPU the calling thread runs on (sched_getcpu). */
int cfloodgate_current_cpu(void);
/* pipe2(fds, O_CLOEXEC): 0 or -errno. */
int cfloodgate_pipe_cloexec(int fds[2]);
/* A signal that interrupts a thread's system call without ending the process: SIGUSR2 with a handler that does
 * nothing and without SA_RESTART (installed once, process-wide). 0 or -errno. */
int cfloodgate_install_interrupt_signal(void);
/* Blocks (1) or unblocks (0) that signal for the calling thread; the previous state (1 or 0), or -errno. Threads
 * of a pool may have it blocked, and a blocked signal interrupts nothing. */
int cfloodgate_block_interrupt_signal(int block);
/* Sends that signal to `thread` (a pthread_t): a BPF_PROG_TEST_RUN it is in returns -EINTR. 0 or -errno. */
int cfloodgate_interrupt_thread(unsigned long thread);

/* Sends `count` frames (at most CFLOODGATE_SEND_BATCH) of `size` bytes each, the i-th at `base + i * stride`
 * (stride 0: one frame sent `count` times), in one sendmmsg(2), which Swift's Glibc module does not declare: how
 * many the socket took, or -errno (ENOBUFS: the device had no room for the first). */
#define CFLOODGATE_SEND_BATCH 256
int cfloodgate_send_frames(int fd, const void *base, unsigned size, unsigned stride, unsigned count);

/* Atomic access to a 64-bit word of a BPF map mapped into memory (BPF_F_MMAPABLE), which XDP writes at the same
 * time: what Swift cannot do without a package for atomics. */
static inline __u64 cfloodgate_load64(const __u64 *word) { return __atomic_load_n(word, __ATOMIC_ACQUIRE); }
static inline void cfloodgate_store64(__u64 *word, __u64 value) { __atomic_store_n(word, value, __ATOMIC_RELEASE); }
static inline void cfloodgate_or64(__u64 *word, __u64 bits) { __atomic_fetch_or(word, bits, __ATOMIC_RELAXED); }
static inline void cfloodgate_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* Run an XDP program once or `repeat` times on `data` (BPF_PROG_TEST_RUN). */
static inline int cfloodgate_test_run(int prog_fd, const void *data, __u32 size, void *data_out,
                                      __u32 *size_out, __u32 repeat, __u32 *retval, __u32 *duration)
{
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = size, .data_out = data_out,
                .data_size_out = size_out ? *size_out : 0, .repeat = repeat);
    int err = bpf_prog_test_run_opts(prog_fd, &opts);
    if (err)
        return err;
    if (retval)
        *retval = opts.retval;
    if (duration)
        *duration = opts.duration;
    if (size_out)
        *size_out = opts.data_size_out;
    return 0;
}

/* Run an XDP program in live-frames mode: each of `repeat` copies of the frame goes through the program, and
 * XDP_TX sends it out of `ifindex` (of the calling thread's network namespace). */
static inline int cfloodgate_test_run_live(int prog_fd, const void *data, __u32 size, __u32 ifindex, __u32 repeat,
                                           __u32 batch_size)
{
    struct xdp_md ctx = {.data_end = size, .ingress_ifindex = ifindex};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = size, .ctx_in = &ctx,
                .ctx_size_in = sizeof(ctx), .repeat = repeat, .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
                .batch_size = batch_size);
    return bpf_prog_test_run_opts(prog_fd, &opts);
}

/* Create an XDP bpf_link on ifindex with XDP_FLAGS_* mode flags. */
static inline int cfloodgate_xdp_link(int prog_fd, int ifindex, __u32 flags)
{
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
    return bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
}

/* Query what XDP program is attached to ifindex and in which mode. */
static inline int cfloodgate_xdp_query(int ifindex, __u32 *prog_id, __u8 *attach_mode)
{
    LIBBPF_OPTS(bpf_xdp_query_opts, opts);
    int err = bpf_xdp_query(ifindex, 0, &opts);
    if (err)
        return err;
    *prog_id = opts.prog_id;
    *attach_mode = opts.attach_mode;
    return 0;
}

/* Batched lookup of a hash map (BPF_MAP_LOOKUP_BATCH). */
static inline int cfloodgate_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values,
                                          __u32 *count)
{
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    return bpf_map_lookup_batch(fd, in_batch, out_batch, keys, values, count, &opts);
}

/* libbpf's print callback formats with va_list; this formats into buf. */
static inline int cfloodgate_vformat(char *buf, size_t len, const char *fmt, va_list args)
{
    return vsnprintf(buf, len, fmt, args);
}

#endif /* CFLOODGATE_H */
