/* For test_examples (LD_PRELOAD): OpenBLAS reporting its generic core, as
 * Debian's 0.3.21 does on CPUs newer than itself. Built as a shared object
 * of its own: linked into run_tests it would stand in for OpenBLAS there. */
const char *openblas_get_corename(void);
const char *openblas_get_corename(void) { return "Prescott"; }
