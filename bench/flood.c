/*
 * flood.c - a bounded loopback flood for `make bench` and the storm specs:
 * COUNT UDP datagrams to 127.0.0.1:PORT (a closed port: each is one
 * NO_SOCKET drop), as fast as the kernel takes them, or at most RATE per
 * second. Prints the seconds it took. Loopback only, bounded in count.
 *
 *   flood COUNT PORT [RATE]              one sender, where the scheduler puts it
 *   flood -s SENDERS COUNT PORT [RATE]   SENDERS processes, each pinned to its
 *                                        own CPU and sending COUNT (0: one per
 *                                        CPU this process may run on)
 *
 * With -s every sender is pinned before it sends (sched_setaffinity) and
 * they start together; the exit code is non-zero when any sender failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SENDERS 256

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* n datagrams to 127.0.0.1:port, at most rate a second (0: no limit) */
static int send_all(long n, int port, long rate)
{
	long sent = 0;
	int fd;
	struct sockaddr_in to;
	double t0;
	long fails = 0;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("flood: socket");
		return 1;
	}
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons((unsigned short)port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t0 = now();
	while (sent < n) {
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) == 1) {
			sent++;
			fails = 0;
		} else if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR && ++fails > 100000) {
			/* refused for good (a firewall's EPERM): never loop forever */
			perror("flood: sendto");
			close(fd);
			return 1;
		} else {
			continue; /* a failed send: the rate is for datagrams sent */
		}
		if (rate > 0 && sent % 1000 == 0) {
			double ahead = (double)sent / (double)rate - (now() - t0);
			if (ahead > 0)
				usleep((useconds_t)(ahead * 1e6));
		}
	}
	close(fd);
	return 0;
}

/* senders processes, the i-th pinned to the i-th CPU of the allowed set,
 * released together through a pipe; 0 when all of them sent everything */
static int pinned(int senders, long n, int port, long rate)
{
	cpu_set_t allowed;
	int cpus[MAX_SENDERS], ncpu = 0, go[2], i, failed = 0;
	pid_t pids[MAX_SENDERS];
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
		perror("flood: sched_getaffinity");
		return 1;
	}
	for (i = 0; i < CPU_SETSIZE && ncpu < MAX_SENDERS; i++)
		if (CPU_ISSET(i, &allowed))
			cpus[ncpu++] = i;
	if (senders == 0)
		senders = ncpu;
	if (senders > ncpu) {
		fprintf(stderr, "flood: %d senders, but only %d CPUs to pin them to\n", senders, ncpu);
		return 2;
	}
	if (pipe(go) != 0) {
		perror("flood: pipe");
		return 1;
	}
	for (i = 0; i < senders; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("flood: fork");
			failed = 1;
			senders = i;
			break;
		}
		if (pids[i] == 0) {
			cpu_set_t one;
			char c;
			CPU_ZERO(&one);
			CPU_SET(cpus[i], &one);
			close(go[1]);
			if (sched_setaffinity(0, sizeof(one), &one) != 0) {
				perror("flood: sched_setaffinity");
				_exit(1);
			}
			/* wait for the start: end of file once the parent closes */
			while (read(go[0], &c, 1) < 0 && errno == EINTR)
				;
			_exit(send_all(n, port, rate));
		}
	}
	close(go[0]);
	close(go[1]); /* every sender starts now */
	for (i = 0; i < senders; i++) {
		int st;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed = 1;
	}
	return failed;
}

int main(int argc, char **argv)
{
	long n, rate;
	int port, senders = -1, a = 1, rc;
	double t0;
	if (argc > 2 && strcmp(argv[1], "-s") == 0) {
		char *end;
		long s = strtol(argv[2], &end, 10);
		if (*end != '\0' || s < 0 || s > MAX_SENDERS) {
			fprintf(stderr, "flood: -s SENDERS 0..%d (0: one per CPU)\n", MAX_SENDERS);
			return 2;
		}
		senders = (int)s;
		a = 3;
	}
	if (argc - a < 2) {
		fprintf(stderr, "usage: %s [-s SENDERS] COUNT PORT [RATE]\n", argv[0]);
		return 2;
	}
	n = atol(argv[a]);
	port = atoi(argv[a + 1]);
	rate = argc > a + 2 ? atol(argv[a + 2]) : 0;
	if (n <= 0 || n > 100000000 || port <= 0 || port > 65535) {
		fprintf(stderr, "flood: COUNT 1..1e8, PORT 1..65535\n");
		return 2;
	}
	t0 = now();
	rc = senders < 0 ? send_all(n, port, rate) : pinned(senders, n, port, rate);
	if (rc != 0)
		return rc;
	printf("%.3f\n", now() - t0);
	return 0;
}
