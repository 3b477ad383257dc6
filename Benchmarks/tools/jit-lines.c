// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * jit-lines: where each source line of a loaded BPF program starts in its
 * JIT image, from the kernel's line info (bpf_prog_info.jited_line_info and
 * line_info, with the program's BTF for the file names and text).
 *
 *   cc -O1 -o jit-lines jit-lines.c -lbpf
 *   ./jit-lines PROG_ID
 *
 * Prints "function <address> <length>" for each of the program's functions,
 * then one line each: "<address> <file>:<line> <source text>". Used by
 * profile-flood.sh and profile-packet.sh (through jit-samples.py) to turn
 * perf's sampled addresses in a JITed program into source lines (perf cannot
 * annotate BPF without libopcodes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>

int main(int argc, char **argv)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), lines, jited, ksyms, rec_size;
	struct btf *btf;
	void *line_info;
	__u64 *jited_lines, *syms;
	__u32 *func_lens;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PROG_ID\n", argv[0]);
		return 2;
	}
	fd = bpf_prog_get_fd_by_id(atoi(argv[1]));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len)) {
		perror("bpf program");
		return 1;
	}
	lines = info.nr_line_info;
	jited = info.nr_jited_line_info;
	ksyms = info.nr_jited_ksyms;
	rec_size = info.line_info_rec_size;
	line_info = calloc(lines, rec_size);
	jited_lines = calloc(jited, sizeof(__u64));
	syms = calloc(ksyms, sizeof(__u64));
	func_lens = calloc(ksyms, sizeof(__u32));
	btf = btf__load_from_kernel_by_id(info.btf_id);
	if (!line_info || !jited_lines || !syms || !func_lens || !btf) {
		fprintf(stderr, "no memory, or no BTF for the program\n");
		return 1;
	}

	memset(&info, 0, sizeof(info));
	info.nr_line_info = lines;
	info.line_info_rec_size = rec_size;
	info.line_info = (__u64)(unsigned long)line_info;
	info.nr_jited_line_info = jited;
	info.jited_line_info_rec_size = sizeof(__u64);
	info.jited_line_info = (__u64)(unsigned long)jited_lines;
	info.nr_jited_ksyms = ksyms;
	info.jited_ksyms = (__u64)(unsigned long)syms;
	info.nr_jited_func_lens = ksyms;
	info.jited_func_lens = (__u64)(unsigned long)func_lens;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		perror("bpf program line info");
		return 1;
	}
	for (__u32 i = 0; i < ksyms; i++)
		printf("function %llx %u\n", (unsigned long long)syms[i], func_lens[i]);
	for (__u32 i = 0; i < lines && i < jited; i++) {
		const struct bpf_line_info *l = (const void *)((const char *)line_info + (size_t)i * rec_size);
		const char *file = btf__name_by_offset(btf, l->file_name_off);
		const char *text = btf__name_by_offset(btf, l->line_off);
		const char *base = file ? strrchr(file, '/') : NULL;

		printf("%llx %s:%u %s\n", (unsigned long long)jited_lines[i], base ? base + 1 : (file ? file : "?"),
		       BPF_LINE_INFO_LINE_NUM(l->line_col), text ? text : "");
	}
	return 0;
}
