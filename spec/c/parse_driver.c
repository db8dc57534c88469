/*
 * parse_driver.c - the C-level test driver of the text parser: reads a saved
 * trace file and prints, per line kind, how many lines there were, then one
 * line per event: "cpu pid comm|name|key=value;..." so that a spec can
 * check the parser without Lua in between.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lua-dropprobe/parse.h"

int main(int argc, char **argv)
{
	static const char *const kinds[] = {"empty", "comment", "event", "stack",
					    "ustack", "frame", "lost", "bad"};
	long counts[8] = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	if (argc != 2) {
		fprintf(stderr, "usage: %s trace.txt\n", argv[0]);
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		struct dp_line ln;
		size_t len = (size_t)n;
		if (len && line[len - 1] == '\n')
			len--;
		counts[dp_parse_line(line, len, &ln)]++;
		if (ln.kind == DP_LINE_EVENT) {
			struct dp_span k, v;
			size_t pos = 0;
			printf("%d %ld %.*s|%.*s|", ln.cpu, ln.pid, (int)ln.comm.n, ln.comm.p,
			       (int)ln.name.n, ln.name.p);
			while (dp_payload_next(ln.payload, &pos, &k, &v))
				printf("%.*s=%.*s;", (int)k.n, k.p, (int)v.n, v.p);
			printf("\n");
		} else if (ln.kind == DP_LINE_LOST) {
			printf("lost %d %lld\n", ln.cpu, ln.lost);
		}
	}
	free(line);
	fclose(f);
	for (int i = 0; i < 8; i++)
		printf("%s%s=%ld", i ? " " : "# ", kinds[i], counts[i]);
	printf("\n");
	return 0;
}
