/*
 * CFloodgateLab: the lab's BPF layouts (BPF/lab/lab.h), for Swift. No logic.
 */
#ifndef CFLOODGATE_LAB_H
#define CFLOODGATE_LAB_H

#include "../../../BPF/lab/lab.h"

#endif /* CFLOODGATE_LAB_H */
