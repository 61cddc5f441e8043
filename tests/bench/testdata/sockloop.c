/*
 * sockloop N: for TCP/UDP over IPv4/IPv6, N times socket()+close(), each
 * pair timed with CLOCK_MONOTONIC (vDSO, ~20 ns, the same in every run).
 * Prints per kind: "sock KIND dev=DEV n=N median_ns=... p99_ns=... mean_ns=..."
 * where DEV is what SO_BINDTODEVICE reports for such a socket (the VRF
 * device in a placed session, "" outside). Built and run by tests/bench.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const struct { const char *name; int family, type; } kinds[] = {
		{ "tcp4", AF_INET, SOCK_STREAM }, { "udp4", AF_INET, SOCK_DGRAM },
		{ "tcp6", AF_INET6, SOCK_STREAM }, { "udp6", AF_INET6, SOCK_DGRAM },
	};
	long n = argc > 1 ? atol(argv[1]) : 100000;
	long long *t = calloc((size_t)n, sizeof *t);

	if (t == NULL || n < 1)
		return 2;
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		char dev[64] = "";
		socklen_t len = sizeof dev;
		long long sum = 0;
		int fd = socket(kinds[k].family, kinds[k].type, 0);

		if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &len) < 0) {
			perror(kinds[k].name);
			return 1;
		}
		close(fd);
		for (long i = 0; i < n / 10; i++) /* warm the slab caches */
			close(socket(kinds[k].family, kinds[k].type, 0));
		for (long i = 0; i < n; i++) {
			long long t0 = now_ns();
			fd = socket(kinds[k].family, kinds[k].type, 0);
			if (fd < 0) {
				perror("socket");
				return 1;
			}
			close(fd);
			t[i] = now_ns() - t0;
			sum += t[i];
		}
		qsort(t, (size_t)n, sizeof *t, cmp);
		printf("sock %s dev=\"%s\" n=%ld median_ns=%lld p99_ns=%lld mean_ns=%lld\n", kinds[k].name, dev, n,
		       t[n / 2], t[(n * 99 + 99) / 100 - 1], sum / n);
	}
	return 0;
}
