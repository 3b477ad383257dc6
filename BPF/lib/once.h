/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One read or write of a value another CPU (or userspace) may change
 * meanwhile: the compiler neither repeats, merges nor tears it.
 */
#ifndef FG_LIB_ONCE_H
#define FG_LIB_ONCE_H

#ifndef READ_ONCE
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#endif
#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

#endif /* FG_LIB_ONCE_H */
