/*
 * floor.c - what the kernel alone costs a live reader of `make bench`
 * before its first drop and after its last, without the library: an
 * instance made, its per-CPU buffers sized, skb:kfree_skb's filter set and
 * the event enabled; then /proc/kallsyms read once (what names a drop's
 * location), the event disabled and the instance removed. No event is
 * read. Prints "ready" once set up, waits SECONDS (a reader's quiet spell
 * at the end), and once the instance is gone prints {"got":0,"lost":0}
 * (exit 0); anything that fails is said on stderr (exit 1).
 *
 *   floor TRACING_DIR BUFFER_KB FILTER [SECONDS]
 *
 * The instance is removed on every way out but a signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char inst[4096];

static int put(const char *file, const char *text)
{
	char path[8192];
	int fd, ok;
	snprintf(path, sizeof(path), "%s/%s", inst, file);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "floor: %s: %s\n", path, strerror(errno));
		return -1;
	}
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	if (!ok)
		fprintf(stderr, "floor: %s: %s\n", path, strerror(errno));
	close(fd);
	return ok ? 0 : -1;
}

static int done(int rc)
{
	put("events/skb/kfree_skb/enable", "0");
	if (rmdir(inst) < 0) {
		fprintf(stderr, "floor: rmdir %s: %s\n", inst, strerror(errno));
		return 1;
	}
	if (rc == 0)
		printf("{\"got\":0,\"lost\":0}\n");
	return rc;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	struct timespec quiet = {2, 0};
	int fd;
	ssize_t n;
	if (argc < 4) {
		fprintf(stderr, "usage: floor TRACING_DIR BUFFER_KB FILTER [SECONDS]\n");
		return 2;
	}
	if (argc > 4)
		quiet.tv_sec = atoi(argv[4]);
	snprintf(inst, sizeof(inst), "%s/instances/dropprobe-floor-%d", argv[1], (int)getpid());
	if (mkdir(inst, 0750) < 0) {
		fprintf(stderr, "floor: mkdir %s: %s\n", inst, strerror(errno));
		return 1;
	}
	if (put("buffer_size_kb", argv[2]) < 0 || put("events/skb/kfree_skb/filter", argv[3]) < 0 ||
	    put("events/skb/kfree_skb/enable", "1") < 0)
		return done(1);
	printf("ready\n");
	fflush(stdout);
	nanosleep(&quiet, NULL);
	fd = open("/proc/kallsyms", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "floor: /proc/kallsyms: %s\n", strerror(errno));
		return done(1);
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	return done(n < 0 ? 1 : 0);
}
