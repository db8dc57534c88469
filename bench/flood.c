/*
 * flood.c - a bounded loopback flood for `make bench`: N UDP datagrams to
 * 127.0.0.1:PORT (a closed port: each is one NO_SOCKET drop), as fast as
 * the kernel takes them, or at most RATE per second. Prints the seconds it
 * took. Loopback only, bounded in count.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long n, rate, sent = 0;
	int port, fd;
	struct sockaddr_in to;
	double t0;
	if (argc < 3) {
		fprintf(stderr, "usage: %s COUNT PORT [RATE]\n", argv[0]);
		return 2;
	}
	n = atol(argv[1]);
	port = atoi(argv[2]);
	rate = argc > 3 ? atol(argv[3]) : 0;
	if (n <= 0 || n > 100000000 || port <= 0 || port > 65535) {
		fprintf(stderr, "flood: COUNT 1..1e8, PORT 1..65535\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	memset(&to, 0, sizeof(to));
	to.sin_family = AF_INET;
	to.sin_port = htons((unsigned short)port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t0 = now();
	while (sent < n) {
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) == 1)
			sent++;
		if (rate > 0 && sent % 1000 == 0) {
			double ahead = (double)sent / (double)rate - (now() - t0);
			if (ahead > 0)
				usleep((useconds_t)(ahead * 1e6));
		}
	}
	close(fd);
	printf("%.3f\n", now() - t0);
	return 0;
}
