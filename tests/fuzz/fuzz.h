/* Helpers shared by the fuzz targets: a private temporary directory, the cluster key and the config
 * every target that needs a daemon's state starts from, and a byte reader over the fuzz input. */
#ifndef DSR_FUZZ_H
#define DSR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fuzz targets' cluster: nodes lb1 (192.0.2.11) and lb2 (192.0.2.12); services web (192.0.2.100
 * tcp/80, three backends and a sorry backend), dns (192.0.2.100 udp/53, on_backend_down = keep) and
 * mail (192.0.2.101 tcp/25). */
extern const uint8_t fuzz_key[AUTH_KEY_LEN];

/* A private directory, created on first use and removed at exit. */
const char *fuzz_tmpdir(void);
/* Writes len bytes to name in the private directory; returns the file's path (static buffer). */
const char *fuzz_write_file(const char *name, const void *buf, size_t len);
/* The fuzz targets' config, loaded through cfg_load; exits if it does not load. */
struct cfg *fuzz_cfg(void);
/* Logs nothing below errors: a fuzz run executes millions of inputs. */
void fuzz_quiet(void);

/* Consumes the fuzz input front to back; reads past the end give zeros. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};
uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
/* The next chunk: a 2-byte length (capped at max) and that many bytes (fewer at the end of the input). */
size_t fuzz_chunk(struct fuzz_in *in, size_t max, const uint8_t **chunk);

#endif
