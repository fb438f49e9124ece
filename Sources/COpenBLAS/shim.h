// OpenBLAS's CBLAS interface: every matrix product in redi-ps goes through it.
#include <cblas.h>
