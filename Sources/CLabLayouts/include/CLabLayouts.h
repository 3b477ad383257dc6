/*
 * CLabLayouts: the lab's BPF layouts (BPF/lab/lab.h), for Swift. No logic.
 */
#ifndef CLAB_LAYOUTS_H
#define CLAB_LAYOUTS_H

#include "../../../BPF/lab/lab.h"

#endif /* CLAB_LAYOUTS_H */
