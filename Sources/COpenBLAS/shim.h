// OpenBLAS's CBLAS interface: every matrix product in redi-ps goes through it.
#include <cblas.h>

// Exported by OpenBLAS's threaded builds (its own fork handler restarts the pool with them),
// not declared in its headers: re-reading OPENBLAS_* from the environment and restarting the
// worker threads is the only way to change how long idle workers spin, which OpenBLAS
// otherwise fixes when the library is loaded (see Numerics/Matmul.swift).
void openblas_read_env(void);
int blas_thread_shutdown_(void);
int blas_thread_init(void);
