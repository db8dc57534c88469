/*
 * datin.c - a trace.dat as an input (see datin.h).
 */
#include "datin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event-parse.h>
#include <trace-cmd.h>

#include "parse.h"

const char *dp_datin_open(struct dp_datin *d, const char *path)
{
	struct tracecmd_input *top;
	struct tep_handle *tep;
	int n;
	d->inputs = NULL;
	d->ninputs = d->cur = 0;
	dp_ksyms_init(&d->syms, NULL, 0);
	errno = 0;
	top = tracecmd_open(path, 0);
	if (!top)
		return errno ? strerror(errno) : "not a trace.dat libtracecmd can read";
	n = tracecmd_buffer_instances(top);
	d->inputs = calloc((size_t)(n > 0 ? n : 0) + 1, sizeof(*d->inputs));
	if (!d->inputs) {
		tracecmd_close(top);
		return "out of memory";
	}
	d->inputs[d->ninputs++] = top;
	for (int i = 0; i < n; i++) {
		struct tracecmd_input *h = tracecmd_buffer_instance_handle(top, i);
		if (h)
			d->inputs[d->ninputs++] = h;
	}
	tep = tracecmd_get_tep(top);
	if (!tep)
		return "no event formats in the file";
	dp_ksyms_init(&d->syms, tep, 0);
	if (tep_get_cpus(tep) <= 0 || tep_get_cpus(tep) > DP_CPU_MAX + 1)
		return "bad CPU count";
	return NULL;
}

struct tep_handle *dp_datin_tep(const struct dp_datin *d)
{
	return d->ninputs ? tracecmd_get_tep(d->inputs[0]) : NULL;
}

struct feed {
	struct dp_sink *k;
	long n;
	int stop;
};

static int one(struct tracecmd_input *h, struct tep_record *rec, int cpu, void *data)
{
	struct feed *f = data;
	(void)h;
	if (cpu < 0 || cpu > DP_CPU_MAX)
		return 0;
	if (rec->missed_events)
		f->k->lost(f->k, cpu, rec->missed_events);
	f->n++;
	f->stop = f->k->event(f->k, cpu, rec->data, rec->size, rec->ts);
	return f->stop; /* nonzero: stop here; the next call goes on */
}

long dp_datin_feed(struct dp_datin *d, struct dp_sink *k)
{
	struct feed f = {k, 0, 0};
	while (d->cur < d->ninputs) {
		tracecmd_iterate_events(d->inputs[d->cur], NULL, 0, one, &f);
		if (f.stop)
			break;
		/* this buffer is done: no stack after it belongs to it */
		if (++d->cur < d->ninputs && k->boundary)
			k->boundary(k);
	}
	return f.n;
}

void dp_datin_close(struct dp_datin *d)
{
	/* the instance handles before the top one, which owns the formats */
	for (int i = d->ninputs - 1; i >= 0; i--)
		tracecmd_close(d->inputs[i]);
	free(d->inputs);
	d->inputs = NULL;
	d->ninputs = d->cur = 0;
	dp_ksyms_init(&d->syms, NULL, 0);
}
