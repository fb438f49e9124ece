// OpenBLAS's CBLAS interface: every matrix product in redi-ps goes through it. OpenBLAS's
// internals (kernel switching, the thread pool) are looked up at run time instead
// (Sources/BLASKernel/OpenBLASRuntime.swift), so builds that lack them still link.
#include <cblas.h>
