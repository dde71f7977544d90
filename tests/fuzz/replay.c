/* Replays fuzz inputs through a target's LLVMFuzzerTestOneInput without libFuzzer, so the corpus runs
 * as a regression test with gcc and ASan+UBSan (`make fuzz-replay`, part of `make check`). Arguments are
 * files or directories (every regular file in them, in name order). Exits non-zero if a file cannot be
 * read; a finding aborts through the sanitizers. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz.h"

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;

	if (!f || fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0)
		goto fail;
	/* Exactly len bytes (malloc(0) may return NULL): a read past the input is caught. */
	buf = malloc(len ? (size_t)len : 1);
	if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len)
		goto fail;
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 0;
fail:
	fprintf(stderr, "replay: %s: %s\n", path, strerror(errno ? errno : EIO));
	free(buf);
	if (f)
		fclose(f);
	return -1;
}

static int replay_dir(const char *dir, unsigned *n)
{
	struct dirent **names;
	char path[4096];
	struct stat st;
	int count, ret = 0;

	count = scandir(dir, &names, NULL, alphasort);
	if (count < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) < 0)
				ret = -1;
			(*n)++;
		}
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	unsigned n = 0;
	int ret = 0;
	struct stat st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			ret = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (replay_dir(argv[i], &n) < 0)
				ret = 1;
		} else {
			if (replay_file(argv[i]) < 0)
				ret = 1;
			n++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* fd 2 directly: a target may have silenced the stdio stream stderr (fuzz_quiet). */
	dprintf(2, "replay: %s: %u inputs in %.2f s\n", argv[0], n,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return ret;
}
